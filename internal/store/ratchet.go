package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// AnchorSecretSize is the length of a ratchet anchor's secret.
const AnchorSecretSize = 32

// Anchor is the stored position of the epoch-key ratchet (psi.EpochSecret):
// the latest epoch the server reached and that epoch's secret. Earlier
// epochs' secrets are not stored and cannot be recomputed from it.
type Anchor struct {
	Epoch  string
	Secret [AnchorSecretSize]byte
}

// The anchor file, DIR/ratchet, mode 0600:
//
//	magic    [8]byte "PSIMRAT1"
//	epochLen byte
//	epoch    [epochLen]byte
//	secret   [32]byte
//	sum      [32]byte, SHA-256 of everything before it
const anchorMagic = "PSIMRAT1"

func (d *Dir) anchorPath() string { return filepath.Join(d.path, "ratchet") }

// LoadAnchor reads the ratchet's anchor. A missing file gives ok false and
// no error; a damaged one an error saying what to do.
func (d *Dir) LoadAnchor() (a Anchor, ok bool, err error) {
	b, err := readSecret(d.anchorPath(), 0, "ratchet")
	if errors.Is(err, os.ErrNotExist) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	defer clear(b)
	bad := fmt.Errorf("store: ratchet file %s is damaged; restore it from a backup, or remove it and give a seed (every epoch key changes)", d.anchorPath())
	if len(b) < len(anchorMagic)+1+AnchorSecretSize+sha256.Size || string(b[:len(anchorMagic)]) != anchorMagic {
		return Anchor{}, false, bad
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); string(want[:]) != string(sum) {
		return Anchor{}, false, bad
	}
	r := body[len(anchorMagic):]
	n := int(r[0])
	if len(r) != 1+n+AnchorSecretSize {
		return Anchor{}, false, bad
	}
	a.Epoch = string(r[1 : 1+n])
	if ValidEpoch(a.Epoch) != nil {
		return Anchor{}, false, bad
	}
	copy(a.Secret[:], r[1+n:])
	return a, true, nil
}

// SaveAnchor replaces the ratchet's anchor, atomically, with mode 0600. The
// previous anchor's secret is gone from the file system's namespace once it
// returns (a copy may survive in free blocks of the disk).
func (d *Dir) SaveAnchor(a Anchor) error {
	if err := ValidEpoch(a.Epoch); err != nil {
		return err
	}
	b := make([]byte, 0, len(anchorMagic)+1+len(a.Epoch)+AnchorSecretSize+sha256.Size)
	b = append(b, anchorMagic...)
	b = append(b, byte(len(a.Epoch)))
	b = append(b, a.Epoch...)
	b = append(b, a.Secret[:]...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	defer clear(b)
	return atomicfile.WriteFile(d.anchorPath(), b, 0o600)
}

// HasSeed reports whether the data directory holds a master seed file.
func (d *Dir) HasSeed() bool {
	_, err := os.Lstat(d.seedPath())
	return err == nil
}

// EraseSeed overwrites the master seed file with zeros and removes it, once
// the ratchet's anchor replaces it: with the seed gone, a stolen data
// directory holds only the current epoch's secret.
func (d *Dir) EraseSeed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := d.seedPath()
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		_, werr := f.Write(make([]byte, SeedSize))
		serr := f.Sync()
		f.Close()
		if werr != nil || serr != nil {
			return fmt.Errorf("store: erasing the seed: %w", errors.Join(werr, serr))
		}
	} else if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: erasing the seed: %w", err)
	}
	return atomicfile.SyncDir(d.path)
}
