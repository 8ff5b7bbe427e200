package knock

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"strconv"
	"strings"
)

// Digest selects the hash function that turns a secret and a period into a
// port sequence. The zero value is MD5, the default of the C daemon.
type Digest uint8

// The digests of the C daemon.
const (
	MD5 Digest = iota
	SHA256
	SHA384
	SHA512
)

var digestNames = [...]string{MD5: "md5", SHA256: "sha256", SHA384: "sha384", SHA512: "sha512"}

// maxSeqLen is the longest sequence, that of SHA512.
const maxSeqLen = sha512.Size / 2

// ParseDigest parses a digest name: md5, sha256, sha384 or sha512, in any
// case (the C daemon compares with strcasecmp).
func ParseDigest(s string) (Digest, error) {
	for d, name := range digestNames {
		if strings.EqualFold(s, name) {
			return Digest(d), nil
		}
	}
	return 0, fmt.Errorf("unknown digest %q: want md5, sha256, sha384 or sha512", s)
}

// String returns the lower-case name of d ("md5", ...).
func (d Digest) String() string {
	if int(d) < len(digestNames) {
		return digestNames[d]
	}
	return "Digest(" + strconv.Itoa(int(d)) + ")"
}

// SeqLen returns the number of ports in a sequence made with d: half the
// digest size in bytes (8 for md5, 16 for sha256, 24 for sha384, 32 for
// sha512), or 0 for an unknown digest.
func (d Digest) SeqLen() int {
	switch d {
	case MD5:
		return md5.Size / 2
	case SHA256:
		return sha256.Size / 2
	case SHA384:
		return sha512.Size384 / 2
	case SHA512:
		return sha512.Size / 2
	}
	return 0
}

func (d Digest) valid() bool { return int(d) < len(digestNames) }

// sum writes the digest of data into out and returns its length. It does not
// allocate.
func (d Digest) sum(out *[sha512.Size]byte, data []byte) int {
	switch d {
	case MD5:
		s := md5.Sum(data)
		return copy(out[:], s[:])
	case SHA256:
		s := sha256.Sum256(data)
		return copy(out[:], s[:])
	case SHA384:
		s := sha512.Sum384(data)
		return copy(out[:], s[:])
	case SHA512:
		s := sha512.Sum512(data)
		return copy(out[:], s[:])
	}
	return 0
}
