// Package store owns the server's data directory: the master seed, the
// cached evaluated sets of each epoch and the self-signed TLS certificate,
// all written atomically so that a crash at any instant leaves either the
// old file or the new one, never a mix.
//
// Start with Open, which creates the directory, takes an exclusive lock on it
// (two servers never share one) and removes the temporary files a crash left
// behind. Then:
//
//   - Dir.Seed returns the 32-byte master seed, creating it on first use;
//   - Dir.SaveSet and Dir.LoadSet keep one epoch's set per file, with a
//     trailing SHA-256 that LoadSet verifies, so a corrupt or half-written
//     set is reported as an error (the caller recomputes it), never served;
//   - Dir.SelfSignedCert creates or reuses the server's certificate.
//
// The audit log (package audit) lives in the same directory but is written
// by its own package. WriteFileAtomic and WriteAtomic are usable for any
// file, such as the advertiser registry. LockFile is the advisory lock used
// for both.
//
// The layout of a data directory:
//
//	DIR/lock          held (flock) while a server uses DIR
//	DIR/seed          the master seed, 32 bytes, mode 0600
//	DIR/sets/E.set    the cached set of epoch E
//	DIR/tls/cert.pem  the self-signed certificate
//	DIR/tls/key.pem   its private key, mode 0600
//	DIR/audit.jsonl   the audit log (package audit)
package store
