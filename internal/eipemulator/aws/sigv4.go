package aws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// credential is the parsed Credential scope of a SigV4 Authorization header:
// AKID/yyyymmdd/region/service/aws4_request.
type credential struct {
	accessKeyID, date, region, service string
}

// sigV4 is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." header.
type sigV4 struct {
	cred          credential
	signedHeaders []string
	signature     string
}

func parseAuthorization(h string) (sigV4, bool) {
	const algo = "AWS4-HMAC-SHA256 "
	rest, ok := strings.CutPrefix(h, algo)
	if !ok {
		return sigV4{}, false
	}
	var s sigV4
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return sigV4{}, false
			}
			s.cred = credential{accessKeyID: f[0], date: f[1], region: f[2], service: f[3]}
		case "SignedHeaders":
			s.signedHeaders = strings.Split(v, ";")
		case "Signature":
			s.signature = v
		}
	}
	if s.cred.accessKeyID == "" || len(s.signedHeaders) == 0 || s.signature == "" {
		return sigV4{}, false
	}
	return s, true
}

// verify recomputes the signature with secret, as the SigV4 specification describes:
// canonical request, string to sign, then the HMAC chain over the credential scope.
func (s sigV4) verify(r *http.Request, body []byte, secret string) bool {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range s.signedHeaders {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			vals := r.Header.Values(h)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		canon.WriteString(h + ":" + v + "\n")
	}
	canon.WriteString("\n" + strings.Join(s.signedHeaders, ";") + "\n")
	sum := sha256.Sum256(body)
	canon.WriteString(hex.EncodeToString(sum[:]))

	scope := strings.Join([]string{s.cred.date, s.cred.region, s.cred.service, "aws4_request"}, "/")
	creq := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	key := []byte("AWS4" + secret)
	for _, part := range []string{s.cred.date, s.cred.region, s.cred.service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	return hmac.Equal([]byte(want), []byte(s.signature))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalQuery sorts the query by key and value and escapes it the SigV4 way
// (RFC 3986 unreserved characters only, spaces as %20).
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, escape(k)+"="+escape(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
