// Package setcodec owns the wire format of the platform's set: the epoch's
// OPRF outputs, truncated, sorted and Golomb-Rice coded, with a digest.
//
// Call Bits first to choose the truncation L for a session's limits, Truncate
// each OPRF output to a Value, and Encode the values. The client checks the
// bytes with Open (or ReadSet / NewReader for an io.Reader) and asks Match or
// Count which of its own truncated values are in the set.
//
// Guarantees:
//
//   - Bits(maxClientRows, setSize) gives L = 40 + ceil(log2 maxClientRows) +
//     ceil(log2 setSize), so that a session in which the client looks up at
//     most maxClientRows values against a set of at most setSize values has
//     probability at most 2^-40 of any false match caused by truncation (a
//     union bound over rows × set elements, each colliding with
//     probability 2^-L).
//   - The encoding is canonical: one set and one L give exactly one byte
//     string, and Open accepts only that string (decode then Encode gives back
//     the input bytes).
//   - Open and the readers never panic, check every length from the header
//     against its limit before allocating, verify the SHA-256 digest, and
//     verify that the body decodes to exactly the announced count of strictly
//     increasing values below 2^L. After Open succeeds, iteration cannot fail.
//   - Membership is a merge-join against a streaming decode: memory is the
//     encoded bytes plus the caller's queries, never a decoded copy of the set.
//   - The size is within a few percent of the entropy bound
//     log2(C(2^L, n)) bits (see EntropyBound).
//
// # Format
//
// All integers are big-endian.
//
//	offset  size  field
//	0       4     magic "PSIS"
//	4       1     version (1)
//	5       1     L, the bits per value, 1..128
//	6       1     k, the Rice parameter; must equal RiceParam(L, n)
//	7       1     reserved, 0
//	8       8     n, the number of values
//	16      8     body length in bytes
//	24      …     body
//	…       32    SHA-256 of every byte before it
//
// The body codes the sorted values v0 < v1 < … as gaps d0 = v0 and
// di = vi - v(i-1) - 1, each as the quotient di>>k in unary (that many 0 bits
// then a 1 bit) followed by the low k bits of di, most significant bit first.
// The last byte is padded with zero bits; nothing follows the last code.
package setcodec
