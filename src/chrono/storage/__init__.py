"""Named buckets over local folders and S3 (boto3), with atomic writes and creation plans."""
