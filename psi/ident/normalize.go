package ident

// Normalize returns the normalized form of value for kind k: the bytes both
// parties hash. defaultRegion is the ISO 3166-1 alpha-2 region used for phone
// numbers written without a country code ("" for none); it is ignored for
// emails. The error says why value is invalid and never contains it.
func Normalize(k Kind, value, defaultRegion string) (string, error) {
	switch k {
	case Email:
		return NormalizeEmail(value)
	case Phone:
		return NormalizePhone(value, defaultRegion)
	}
	return "", ErrUnknownKind
}
