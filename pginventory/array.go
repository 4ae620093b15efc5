package pginventory

import (
	"errors"
	"fmt"
	"strings"
)

// parseArray parses the text form of a one-dimensional PostgreSQL array of
// text or enum values, as the server prints it: {advertising,account}, with
// double quotes around an element that holds a comma, brace, quote,
// backslash or space, or is empty, and an optional dimension prefix such as
// [0:1]=. A NULL element is an error. Errors give positions, never text.
func parseArray(b []byte) ([]string, error) {
	s := string(b)
	if strings.HasPrefix(s, "[") { // explicit bounds: [1:2]={...}
		i := strings.Index(s, "=")
		if i < 0 {
			return nil, errors.New("malformed array: bounds without =")
		}
		if strings.Count(s[:i], "[") > 1 {
			return nil, errors.New("want a one-dimensional array")
		}
		s = s[i+1:]
	}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, errors.New("malformed array: want {...}")
	}
	s = s[1 : len(s)-1]
	if s == "" {
		return nil, nil
	}
	var items []string
	for item := 1; ; item++ {
		var elem string
		if strings.HasPrefix(s, "\"") {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						break
					}
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("malformed array: item %d: unterminated quote", item)
			}
			elem, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			elem, s = s[:end], s[end:]
			switch {
			case strings.ContainsAny(elem, "{}"):
				return nil, errors.New("want a one-dimensional array")
			case strings.EqualFold(elem, "NULL"):
				return nil, fmt.Errorf("item %d is NULL", item)
			}
		}
		items = append(items, elem)
		if s == "" {
			return items, nil
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("malformed array: after item %d", item)
		}
		s = s[1:]
	}
}
