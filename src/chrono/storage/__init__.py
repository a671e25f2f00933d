"""Named buckets over local folders (S3 comes with the scale-out modes), atomic writes."""
