package knock

import (
	"bytes"
	"errors"
)

// ErrUTF16 is the error for a text file saved as UTF-16, as Windows
// PowerShell 5.1's `>` and `Out-File` write it: the parsers read ASCII or
// UTF-8 only, and a UTF-16 file would otherwise be read as garbage keys.
var ErrUTF16 = errors.New("the file is UTF-16 (as PowerShell 5.1's > writes it): save it as ASCII or UTF-8, e.g. Set-Content -Encoding ascii, or Notepad's Save as UTF-8")

// utf8BOM is the byte-order mark some editors put at the start of a UTF-8
// file.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// Text returns the text of a secret, access or config file for the
// parsers: a UTF-8 byte-order mark is dropped (older editors add one);
// UTF-16, with its byte-order mark or told by NUL bytes, is refused with
// ErrUTF16, which says how to save the file.
func Text(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) ||
		bytes.IndexByte(data, 0) >= 0 {
		return nil, ErrUTF16
	}
	return bytes.TrimPrefix(data, utf8BOM), nil
}
