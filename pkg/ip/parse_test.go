package ip

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// checkParseError asserts that err is a *ParseError for token that matches
// ErrInvalid, names the token in quotes, and carries a reason containing
// wantReason.
func checkParseError(t *testing.T, err error, kind, token, wantReason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("parse %q: got no error, want one containing %q", token, wantReason)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not match ErrInvalid", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %q is not a *ParseError", err)
	}
	if pe.Kind != kind || pe.Token != token {
		t.Errorf("ParseError{Kind: %q, Token: %q}, want {%q, %q}", pe.Kind, pe.Token, kind, token)
	}
	if !strings.Contains(err.Error(), strconv.Quote(token)) {
		t.Errorf("error %q does not quote the token %q", err, token)
	}
	if !strings.Contains(pe.Reason, wantReason) {
		t.Errorf("reason %q does not contain %q", pe.Reason, wantReason)
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // canonical form; "" when an error is expected
		wantErr string // part of the reason
	}{
		{name: "ipv4", in: "10.244.120.10", want: "10.244.120.10"},
		{name: "ipv4 zero", in: "0.0.0.0", want: "0.0.0.0"},
		{name: "ipv4 broadcast", in: "255.255.255.255", want: "255.255.255.255"},
		{name: "ipv6", in: "fd00::10", want: "fd00::10"},
		{name: "ipv6 upper case is canonicalised", in: "FD00::A", want: "fd00::a"},
		{name: "ipv6 long form is canonicalised", in: "fd00:0000:0000:0000:0000:0000:0000:0001", want: "fd00::1"},
		{name: "ipv6 unspecified", in: "::", want: "::"},
		{name: "ipv4-compatible ipv6 stays ipv6", in: "::1.2.3.4", want: "::102:304"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "octet over 255", in: "10.0.0.256", wantErr: "IPv4 field has value >255"},
		{name: "leading zero", in: "010.0.0.1", wantErr: "leading zero"},
		{name: "too short", in: "10.0.0", wantErr: "too short"},
		{name: "leading space", in: " 10.0.0.1", wantErr: "whitespace"},
		{name: "trailing newline", in: "10.0.0.1\n", wantErr: "whitespace"},
		{name: "inner tab", in: "fd00::\t1", wantErr: "whitespace"},
		{name: "zone", in: "fe80::1%eth0", wantErr: `IPv6 zone "eth0" not allowed`},
		{name: "ipv4-mapped ipv6", in: "::ffff:1.2.3.4", wantErr: "IPv4-mapped IPv6 address not allowed; write 1.2.3.4"},
		{name: "ipv4-mapped hex", in: "::ffff:a00:1", wantErr: "IPv4-mapped"},
		{name: "cidr is not an address", in: "10.0.0.0/8", wantErr: "unexpected character"},
		{name: "range is not an address", in: "10.0.0.1-10.0.0.2", wantErr: "unexpected character"},
		{name: "garbage", in: "abc", wantErr: "unable to parse IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if tt.wantErr != "" {
				checkParseError(t, err, "IP", tt.in, tt.wantErr)
				if got.IsValid() {
					t.Errorf("got %v with the error, want the zero Addr", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddr(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Errorf("ParseAddr(%q) = %v, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCIDR(t *testing.T) {
	tests := []struct {
		name          string
		in            string
		want          string
		wantErr       string // from both parsers
		wantCanonical string // ParseCanonicalCIDR's extra reason, if it differs
	}{
		{name: "ipv4 /16", in: "10.244.0.0/16", want: "10.244.0.0/16"},
		{name: "ipv4 /0", in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{name: "ipv4 /32", in: "10.0.0.1/32", want: "10.0.0.1/32"},
		{name: "ipv6 /64", in: "fd00::/64", want: "fd00::/64"},
		{name: "ipv6 /0", in: "::/0", want: "::/0"},
		{name: "ipv6 /128", in: "fd00::1/128", want: "fd00::1/128"},
		{name: "host bits", in: "10.0.0.1/24", want: "10.0.0.1/24",
			wantCanonical: "host bits set; the canonical form is 10.0.0.0/24"},
		{name: "ipv6 host bits", in: "fd00::1/64", want: "fd00::1/64",
			wantCanonical: "host bits set; the canonical form is fd00::/64"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "no slash", in: "10.0.0.0", wantErr: "no '/'"},
		{name: "length too long", in: "10.0.0.0/33", wantErr: "prefix length out of range"},
		{name: "leading zero in length", in: "10.0.0.0/024", wantErr: "bad bits after slash"},
		{name: "bad address", in: "10.0.0.256/24", wantErr: "IPv4 field has value >255"},
		{name: "space", in: "10.0.0.0/ 8", wantErr: "whitespace"},
		{name: "zone", in: "fe80::%eth0/64", wantErr: "zones cannot be present"},
		{name: "ipv4-mapped", in: "::ffff:10.0.0.0/120", wantErr: "IPv4-mapped IPv6 prefix not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCIDR(tt.in)
			if tt.wantErr != "" {
				checkParseError(t, err, "CIDR", tt.in, tt.wantErr)
			} else if err != nil {
				t.Fatalf("ParseCIDR(%q): %v", tt.in, err)
			} else if got.String() != tt.want {
				t.Errorf("ParseCIDR(%q) = %v, want %s", tt.in, got, tt.want)
			}

			got, err = ParseCanonicalCIDR(tt.in)
			switch {
			case tt.wantErr != "":
				checkParseError(t, err, "CIDR", tt.in, tt.wantErr)
			case tt.wantCanonical != "":
				checkParseError(t, err, "CIDR", tt.in, tt.wantCanonical)
			case err != nil:
				t.Fatalf("ParseCanonicalCIDR(%q): %v", tt.in, err)
			case got.String() != tt.want:
				t.Errorf("ParseCanonicalCIDR(%q) = %v, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestErrorMessages pins the exact wording of a few messages that users
// will see in webhook rejections.
func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "reversed range",
			err:  second(ParseRange("10.0.0.9-10.0.0.1")),
			want: `invalid IP range "10.0.0.9-10.0.0.1": start 10.0.0.9 is after end 10.0.0.1`,
		},
		{
			name: "bad octet",
			err:  second(ParseAddr("10.0.0.256")),
			want: `invalid IP "10.0.0.256": IPv4 field has value >255`,
		},
		{
			name: "mixed range",
			err:  second(ParseRange("fd00::1-10.0.0.1")),
			want: `invalid IP range "fd00::1-10.0.0.1": mixes IPv6 and IPv4`,
		},
		{
			name: "bad end",
			err:  second(ParseRange("10.0.0.1-10.0.0.x")),
			want: `invalid IP range "10.0.0.1-10.0.0.x": end "10.0.0.x": unexpected character (at "x")`,
		},
		{
			name: "host bits",
			err:  second(ParseCanonicalCIDR("10.0.0.1/24")),
			want: `invalid CIDR "10.0.0.1/24": host bits set; the canonical form is 10.0.0.0/24`,
		},
		{
			name: "mixed list",
			err:  second(ParseRanges([]string{"10.0.0.1", "fd00::1-fd00::2"})),
			want: `invalid IP range "fd00::1-fd00::2": IPv6, but the first entry "10.0.0.1" is IPv4`,
		},
		{
			name: "every bad token of a list",
			err:  second(ParseRanges([]string{"10.0.0.1", "", "10.0.0.5-10.0.0.2"})),
			want: `invalid IP range "": empty` + "\n" +
				`invalid IP range "10.0.0.5-10.0.0.2": start 10.0.0.5 is after end 10.0.0.2`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error")
			}
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			if !errors.Is(tt.err, ErrInvalid) {
				t.Errorf("%q does not match ErrInvalid", tt.err)
			}
		})
	}
}

func TestMixedFamilyErrorClass(t *testing.T) {
	_, err := ParseRange("10.0.0.1-fd00::1")
	if !errors.Is(err, ErrMixedFamily) || !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseRange of a mixed range: %v matches ErrMixedFamily=%v ErrInvalid=%v",
			err, errors.Is(err, ErrMixedFamily), errors.Is(err, ErrInvalid))
	}
	_, err = ParseRange("10.0.0.9-10.0.0.1")
	if errors.Is(err, ErrMixedFamily) {
		t.Errorf("a reversed range %v matches ErrMixedFamily", err)
	}
	_, err = SetOfPrefix(netip.MustParsePrefix("10.0.0.0/24")).Union(SetOfPrefix(netip.MustParsePrefix("fd00::/120")))
	if !errors.Is(err, ErrMixedFamily) {
		t.Errorf("Union of IPv4 and IPv6: %v does not match ErrMixedFamily", err)
	}
}

func second[T any](_ T, err error) error { return err }
