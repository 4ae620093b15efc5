package protocol

import "io"

// readAllSized reads r to its end into a buffer of size bytes, growing it
// only if r holds more. Like io.ReadAll, it returns r's error, if any, other
// than io.EOF (a body cut short reports io.ErrUnexpectedEOF).
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, size)
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return buf[:n], err
		}
	}
	rest, err := io.ReadAll(r)
	if len(rest) == 0 {
		return buf, err
	}
	return append(buf, rest...), err
}
