"""Call recordings: upload, storage, the playback links agents click, retention."""
