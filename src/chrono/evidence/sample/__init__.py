"""A deterministic synthetic legal production with ground truth (``chrono sample evidence``).

``generate_production(out_dir, size, seed)`` writes::

    out_dir/production/     the SOURCE_DIR: custodians/<first_last>/{mail,documents,notes,data,
                            scans,phone,archive,misc}/... and a Concordance volume VOL001/
    out_dir/passwords.txt   one password per line (the AES zip's password among decoys)
    out_dir/truth.json      the ground truth below (written last)

The same size and seed give byte-identical files. Small is about 100 files and a dozen scanned
pages; medium is 2,000+ files and about 250 scanned pages. Scanned pages need DejaVu Sans
(Debian package ``fonts-dejavu-core``).

truth.json::

    {"seed": 7, "size": "small", "default_timezone": "UTC",
     "events": [                     # one per LOGICAL email / call / message
       {"id": "t-000001", "type": "email" | "call" | "message",
        "start": "2025-03-03T14:05:09Z",          # UTC, second precision
        "participants": [{"role": "from"|"to"|"cc"|"bcc"|"caller"|"callee"|"sender"|"recipient",
                          "kind": "email" | "phone",
                          "value": "<address lower-case | E.164 number>",
                          "person": "p-001" | null}],   # null: somebody outside the cast
        "sources": ["production/...path[#locator...]", ...]}],
     "documents": [{"path": ..., "type": "pdf"|"tiff"|"jpeg"|"png"|"text"|"csv"|
                    "loadfile_document", "pages": n,
                    "created": "2025-...Z"?, "scanned": true?, "redactions": [per page]?,
                    "bates": "ABC000001"?, "images": [...]?}],
     "persons": [{"id": "p-001", "name": ..., "emails": [...], "phones": [E.164...],
                  "identifiers": [{"kind": "email" | "phone", "value": ...}],  # emails+phones
                  "namesake_group": "ng-1" | null,   # shared by people with one exact name
                  "timezone": IANA, "custodian": "<folder>" | null}],
     "devices": [{"id": "d-001", "kind": "phone", "value": E.164, "owner": "p-001"}],
     "duplicates": [{"event": "t-…", "sources": [...]}],   # events with more than one source
     "traps": {
       "namesakes": [{"id": "namesake-1", "group": "ng-1", "persons": ["p-002", "p-011"]}],
       "spellings": [{"id": "spelling-1", "person": "p-005",
                      "identifiers": [{"kind": "email"|"phone", "value": ...}]}],
       "clock_skew": [{"id": "skew-1", "event": "t-…", "skew_s": 40 | -40,
                       "sources": ["<CDR row: true time>", "<phone-export row: skewed>"]}],
       "forwards": [{"id": "forward-1", "event": "t-<forward>", "original": "t-<quoted>"}]},
     "hostile": [{"path": ..., "expected": "failed" | "processed",
                  "reason": "<suggested reason code>", "refused_entries"?: n}],
     "canaries": ["Zebulon Quickfire", "zeb.canary@canary-mail.test", "+15550197321", ...],
     "files": <number of files under production/>}

Sources and locators (see :mod:`chrono.evidence.sample.truth`): ``#row:N`` (1-based sheet row,
header and preamble included), ``#page:N``, ``#msg:N`` (0-based mbox message), ``#bates:ABC…``
(DAT row), ``#entry:NAME`` (archive entry, chained for nested archives), ``#attachment:NAME``.

Identity traps (every size; medium has more of each):

- namesakes: two or three distinct people with the exact same full name, each with one work
  address (on different domains) and one phone, all writing and calling; the first group
  includes a custodian. The lead custodian's contact list holds every namesake's card side by
  side (same name, nothing else shared).
- spellings: a person writing as ``first.last@``, ``firstlast@`` and ``flast@`` one domain
  (plus the capitalised ``First.Last@`` form in a From line), always under the same display
  name, with two phones: contact cards list both phones under their name with one spelling,
  and their emails end in a signature showing the second phone. Every number of every
  namesake and spelling person is in at least one call with a custodian.
- clock skew: a call between two custodians in the caller's or callee's carrier CDR at the
  true time and in the other's phone export 40 seconds off (one event, two sources).
- forwards: ``Fwd:``/``FW:`` emails by a custodian quoting an earlier email of their mailbox
  (Gmail's "Forwarded message" or Outlook's "Original Message" block, then its text). A
  forward is its own event, never a duplicate of the quoted one.

Contact cards (``phone/contacts.csv``, ``Name, Phone, Email``) may list several numbers or
addresses of one person separated by ``; ``. Contact rows are no events.

Counting rules: every email, call or message any file shows is an event: .eml files, mbox
messages, emails attached to emails, emails inside archives, printed emails on born-digital and
scanned pages (one printed email per page), DAT email rows (same event as their NATIVE .eml), CDR
rows and phone-export rows (the same call in a CDR and an export is one event with two sources).
Printed and scanned emails show minutes and no offset; their times mean UTC, and any email that
is also printed has a whole-minute time so both sources agree. Phone-export rows are local time
in the zone their ``Time Zone`` column names; the export's owner is the caller of outgoing rows
and the callee of incoming and missed rows. Memos, invoices, letters, notes and CSV tables are
documents, not events.
"""

from chrono.evidence.sample.generate import SampleSummary, generate_production
from chrono.evidence.sample.plan import ProductionPlan, plan_production

__all__ = ["ProductionPlan", "SampleSummary", "generate_production", "plan_production"]
