package spa

// Error is the type of the sentinel errors of Open: compare with
// errors.Is, and count or log by Reason.
type Error struct {
	reason, text string
}

// Error returns the error's text, "spa: " and a sentence.
func (e *Error) Error() string { return "spa: " + e.text }

// Reason returns a short name of the error, for counters and logs:
// "length", "version", "key id", "decrypt", "message", "too old" or
// "future".
func (e *Error) Reason() string { return e.reason }

// The errors of Open. Each is returned as is, except ErrMessage, which
// Open and Seal wrap with what is wrong in the message.
var (
	ErrLength  = &Error{"length", "packet is not 113 bytes long"}
	ErrVersion = &Error{"version", "unknown packet version"}
	ErrKeyID   = &Error{"key id", "unknown key id"}
	ErrDecrypt = &Error{"decrypt", "authentication failed"}
	ErrMessage = &Error{"message", "malformed message"}
	ErrTooOld  = &Error{"too old", "time before the window"}
	ErrFuture  = &Error{"future", "time after the window"}
)
