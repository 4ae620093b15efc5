package protocol

import "io"

// readAllSized reads r to its end into a buffer of size bytes, growing it
// only if r holds more (a short read returns what was read).
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(r, buf)
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		return buf[:n], nil
	default:
		return buf[:n], err
	}
	rest, err := io.ReadAll(r)
	if len(rest) == 0 {
		return buf, err
	}
	return append(buf, rest...), err
}
