package ip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid is matched (with errors.Is) by every error a parser in this
// package returns: the input is not an acceptable IP, CIDR, range or list.
var ErrInvalid = errors.New("invalid IP syntax")

// ErrMixedFamily is matched (with errors.Is) by errors about IPv4 and IPv6
// addresses meeting where only one family is allowed: the two ends of a
// range, the tokens of one list, or the operands of Set.Union. Parse errors
// of this class also match ErrInvalid.
var ErrMixedFamily = errors.New("mixed IPv4 and IPv6")

// ParseError reports one token that could not be accepted. Its message has
// the form
//
//	invalid IP range "10.0.0.9-10.0.0.1": start 10.0.0.9 is after end 10.0.0.1
//
// It matches ErrInvalid, and also ErrMixedFamily when the reason is a mix of
// IPv4 and IPv6.
type ParseError struct {
	// Kind names what was being parsed: "IP", "CIDR" or "IP range".
	Kind string
	// Token is the input exactly as given.
	Token string
	// Reason says what is wrong with Token.
	Reason string

	mixedFamily bool
}

// Error implements error.
func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Kind, e.Token, e.Reason)
}

// Unwrap returns the error classes e belongs to, for errors.Is.
func (e *ParseError) Unwrap() []error {
	if e.mixedFamily {
		return []error{ErrInvalid, ErrMixedFamily}
	}
	return []error{ErrInvalid}
}

// netipReason strips the `ParseAddr("...")`-style prefixes that net/netip
// puts in front of its reasons, because our message already names the token.
func netipReason(err error) string {
	msg := err.Error()
	for {
		rest, ok := stripCallPrefix(msg)
		if !ok {
			return msg
		}
		msg = rest
	}
}

// stripCallPrefix removes one leading `Func("quoted"): ` from msg.
func stripCallPrefix(msg string) (string, bool) {
	open := strings.IndexByte(msg, '(')
	if open <= 0 || strings.ContainsAny(msg[:open], " \"") {
		return msg, false
	}
	q, err := strconv.QuotedPrefix(msg[open+1:])
	if err != nil {
		return msg, false
	}
	rest := msg[open+1+len(q):]
	if !strings.HasPrefix(rest, "): ") {
		return msg, false
	}
	return rest[len("): "):], true
}
