package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/psimatch/psimatch/internal/atomicfile"
)

// SetMeta describes a cached epoch set. It is stored as JSON in the set
// file's header.
type SetMeta struct {
	// Suite is the OPRF suite, such as "ristretto255-SHA512".
	Suite string `json:"suite"`
	// Epoch is the epoch's name; SaveSet fills it in when empty and LoadSet
	// checks it against the file's name.
	Epoch string `json:"epoch"`
	// Size is the number of elements in the set.
	Size int `json:"size"`
	// Bits is the truncated output length the set was coded with.
	Bits uint `json:"bits"`
	// MaxClientRows is the largest client list Bits was chosen for.
	MaxClientRows uint64 `json:"max_client_rows"`
	// Verifiable tells whether the epoch runs in VOPRF mode.
	Verifiable bool `json:"verifiable"`
	// Fingerprint is the fingerprint of the eligible set the set was built
	// from (inventory.Fingerprint, in hex): a start or a reload that reads
	// another fingerprint rebuilds the set instead of serving this one.
	Fingerprint string `json:"fingerprint,omitempty"`
	// PublicKey is the public key (hex) of the generation key the set was
	// evaluated under; a set is only served under that key.
	PublicKey string `json:"public_key,omitempty"`
}

// The set file format, all integers big-endian:
//
//	magic    [7]byte "PSIMSET"
//	version  byte    1
//	metaLen  uint32  at most maxMetaLen
//	meta     [metaLen]byte, JSON of SetMeta
//	countLen uint64
//	count    [countLen]byte
//	membLen  uint64
//	members  [membLen]byte
//	sum      [32]byte, SHA-256 of everything before it
const (
	setMagic   = "PSIMSET"
	setVersion = 1
	maxMetaLen = 64 << 10
	setSuffix  = ".set"
	// setOverhead is the size of a set file with empty meta and blobs.
	setOverhead = len(setMagic) + 1 + 4 + 8 + 8 + sha256.Size
)

// ErrCorruptSet is wrapped by the errors LoadSet returns for a set file that
// is truncated, altered or not a set file at all. The caller should
// recompute the set (SaveSet replaces the file).
var ErrCorruptSet = errors.New("store: corrupt set file")

// maxEpochLen bounds an epoch name.
const maxEpochLen = 128

// ValidEpoch reports whether epoch can name a set file: 1 to 128 characters
// from [A-Za-z0-9._-], not starting with a dot.
func ValidEpoch(epoch string) error {
	if epoch == "" || len(epoch) > maxEpochLen {
		return fmt.Errorf("store: epoch name must be 1 to %d characters", maxEpochLen)
	}
	if epoch[0] == '.' {
		return errors.New("store: epoch name must not start with a dot")
	}
	for i := 0; i < len(epoch); i++ {
		c := epoch[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("store: epoch name: character %d is not one of A-Z a-z 0-9 . _ -", i+1)
		}
	}
	return nil
}

func (d *Dir) setsDir() string { return filepath.Join(d.path, "sets") }

func (d *Dir) setPath(epoch string) string {
	return filepath.Join(d.setsDir(), epoch+setSuffix)
}

// SaveSet writes the set of an epoch, atomically, to DIR/sets/EPOCH.set,
// replacing any earlier one: count and members are the two coded forms of
// the set, opaque here. meta.Epoch must be empty or equal to epoch.
func (d *Dir) SaveSet(epoch string, meta SetMeta, count, members []byte) error {
	if err := ValidEpoch(epoch); err != nil {
		return err
	}
	if meta.Epoch == "" {
		meta.Epoch = epoch
	} else if meta.Epoch != epoch {
		return fmt.Errorf("store: save set: meta names epoch %q, saving as %q", meta.Epoch, epoch)
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("store: save set: %w", err)
	}
	if len(mj) > maxMetaLen {
		return fmt.Errorf("store: save set: meta is %d bytes, limit %d", len(mj), maxMetaLen)
	}
	if err := os.MkdirAll(d.setsDir(), 0o700); err != nil {
		return fmt.Errorf("store: save set: %w", err)
	}
	return atomicfile.Write(d.setPath(epoch), 0o600, func(w io.Writer) error {
		h := sha256.New()
		mw := io.MultiWriter(w, h)
		var hdr [8]byte
		copy(hdr[:], setMagic)
		hdr[7] = setVersion
		parts := [][]byte{
			hdr[:],
			binary.BigEndian.AppendUint32(nil, uint32(len(mj))), mj,
			binary.BigEndian.AppendUint64(nil, uint64(len(count))), count,
			binary.BigEndian.AppendUint64(nil, uint64(len(members))), members,
		}
		for _, p := range parts {
			if _, err := mw.Write(p); err != nil {
				return err
			}
		}
		_, err := w.Write(h.Sum(nil))
		return err
	})
}

// LoadSet reads the cached set of an epoch. A missing file gives ok false
// and no error. A file that fails its checksum or does not parse gives an
// error wrapping ErrCorruptSet; LoadSet never panics on any content. count
// and members share one buffer and must not be appended to.
func (d *Dir) LoadSet(epoch string) (meta SetMeta, count, members []byte, ok bool, err error) {
	if err := ValidEpoch(epoch); err != nil {
		return SetMeta{}, nil, nil, false, err
	}
	path := d.setPath(epoch)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return SetMeta{}, nil, nil, false, nil
		}
		return SetMeta{}, nil, nil, false, fmt.Errorf("store: load set: %w", err)
	}
	meta, count, members, err = parseSet(b)
	if err != nil {
		return SetMeta{}, nil, nil, false, fmt.Errorf("%w %s: %v", ErrCorruptSet, path, err)
	}
	if meta.Epoch != epoch {
		return SetMeta{}, nil, nil, false, fmt.Errorf("%w %s: it holds epoch %q", ErrCorruptSet, path, meta.Epoch)
	}
	return meta, count, members, true, nil
}

// parseSet decodes a whole set file.
func parseSet(b []byte) (meta SetMeta, count, members []byte, err error) {
	if len(b) < setOverhead {
		return meta, nil, nil, fmt.Errorf("%d bytes, shorter than the smallest set file (%d)", len(b), setOverhead)
	}
	if string(b[:len(setMagic)]) != setMagic {
		return meta, nil, nil, errors.New("not a psimatch set file")
	}
	if v := b[len(setMagic)]; v != setVersion {
		return meta, nil, nil, fmt.Errorf("version %d, want %d", v, setVersion)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return meta, nil, nil, errors.New("checksum mismatch (truncated or altered)")
	}
	r := body[len(setMagic)+1:]
	metaLen := uint64(binary.BigEndian.Uint32(r))
	r = r[4:]
	if metaLen > maxMetaLen || metaLen > uint64(len(r)) {
		return meta, nil, nil, fmt.Errorf("meta length %d exceeds the limit %d or the file", metaLen, maxMetaLen)
	}
	dec := json.NewDecoder(bytes.NewReader(r[:metaLen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return meta, nil, nil, fmt.Errorf("meta: %v", err)
	}
	r = r[metaLen:]
	blob := func(what string) ([]byte, error) {
		if len(r) < 8 {
			return nil, fmt.Errorf("%s: length missing", what)
		}
		n := binary.BigEndian.Uint64(r)
		r = r[8:]
		if n > uint64(len(r)) {
			return nil, fmt.Errorf("%s: length %d exceeds the %d bytes left", what, n, len(r))
		}
		out := r[:n:n]
		r = r[n:]
		return out, nil
	}
	if count, err = blob("count set"); err != nil {
		return meta, nil, nil, err
	}
	if members, err = blob("members set"); err != nil {
		return meta, nil, nil, err
	}
	if len(r) != 0 {
		return meta, nil, nil, fmt.Errorf("%d unexpected bytes after the sets", len(r))
	}
	return meta, count, members, nil
}

// Sets returns the epochs that have a set file, sorted. It does not read or
// verify the files.
func (d *Dir) Sets() ([]string, error) {
	entries, err := os.ReadDir(d.setsDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	var epochs []string
	for _, e := range entries {
		epoch, isSet := strings.CutSuffix(e.Name(), setSuffix)
		if isSet && e.Type().IsRegular() && ValidEpoch(epoch) == nil {
			epochs = append(epochs, epoch)
		}
	}
	slices.Sort(epochs)
	return epochs, nil
}

// PruneSets deletes the set file of every epoch not in keep.
func (d *Dir) PruneSets(keep []string) error {
	epochs, err := d.Sets()
	if err != nil {
		return err
	}
	removed := false
	for _, e := range epochs {
		if slices.Contains(keep, e) {
			continue
		}
		if err := os.Remove(d.setPath(e)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store: prune sets: %w", err)
		}
		removed = true
	}
	if removed {
		if err := atomicfile.SyncDir(d.setsDir()); err != nil {
			return fmt.Errorf("store: prune sets: %w", err)
		}
	}
	return nil
}
