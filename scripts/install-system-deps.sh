#!/usr/bin/env bash
# Installs the Debian packages Chrono needs (Tesseract with English and orientation data, fonts
# for the sample generator, Chromium for the dashboard's browser tests). Installs only what is
# missing; needs root or sudo for apt-get.
set -euo pipefail
need=()
dpkg -s tesseract-ocr >/dev/null 2>&1 || need+=(tesseract-ocr)
dpkg -s tesseract-ocr-eng >/dev/null 2>&1 || need+=(tesseract-ocr-eng)
dpkg -s tesseract-ocr-osd >/dev/null 2>&1 || need+=(tesseract-ocr-osd)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)   # the dashboard's browser tests (Playwright)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
