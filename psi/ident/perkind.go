package ident

// PerKind holds one T per identifier kind. Its JSON form is an object with
// one member per kind name, {"email": …, "phone": …}, the form every report
// and control message uses.
type PerKind[T any] struct {
	Email T `json:"email"`
	Phone T `json:"phone"`
}

// At returns a pointer to k's value. It panics for a kind that is not Valid:
// kinds come from ParseKind or Kinds, never from unchecked input.
func (p *PerKind[T]) At(k Kind) *T {
	switch k {
	case Email:
		return &p.Email
	case Phone:
		return &p.Phone
	}
	panic("ident: PerKind.At of an unknown kind")
}

// Get returns k's value.
func (p PerKind[T]) Get(k Kind) T { return *p.At(k) }

// Sum adds the values of every kind.
func Sum[T int | int64 | float64](p PerKind[T]) T { return p.Email + p.Phone }
