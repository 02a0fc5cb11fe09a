package alibaba

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The two signature schemes of Alibaba Cloud's OpenAPI: V3 (an Authorization header,
// ACS3-HMAC-SHA256, the SDK's default) and the classic RPC signature (HMAC-SHA1 over the
// sorted query, parameters AccessKeyId/Signature/SignatureMethod/SignatureVersion).
// V3 is described in "Request syntax and signature method V3"
// (https://www.alibabacloud.com/help/en/resource-management/developer-reference/common-parameters);
// the RPC form follows darabonba-openapi's GetRPCSignature, which the SDK uses when
// SignatureAlgorithm is "v2".
const v3Algorithm = "ACS3-HMAC-SHA256"

// checkSignature refuses unsigned requests and requests naming another access key, and
// verifies the signature itself when the emulator knows the secret.
func (s *Server) checkSignature(r *http.Request, params url.Values) error {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return s.checkV3(r, auth)
	}
	if params.Get("Signature") != "" || params.Get("AccessKeyId") != "" {
		return s.checkRPC(r, params)
	}
	return errUnsigned.copy()
}

func (s *Server) checkKey(id string) error {
	if id == "" {
		return errUnsigned.copy()
	}
	if s.opts.AccessKeyID != "" && id != s.opts.AccessKeyID {
		return errBadKey.copy()
	}
	return nil
}

// checkV3 checks "ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<h1;h2>,Signature=<hex>".
func (s *Server) checkV3(r *http.Request, auth string) error {
	alg, rest, _ := strings.Cut(auth, " ")
	if alg != v3Algorithm {
		return &apiError{http.StatusBadRequest, "InvalidParameter.SignatureAlgorithm", "Unsupported signature algorithm " + alg + "."}
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	if fields["Signature"] == "" || fields["SignedHeaders"] == "" {
		return errUnsigned.copy()
	}
	if err := s.checkKey(fields["Credential"]); err != nil {
		return err
	}
	if s.opts.AccessKeySecret == "" {
		return nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return &apiError{http.StatusBadRequest, "InvalidParameter", "read the body: " + err.Error()}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("x-acs-content-sha256"); h != payload {
		return &apiError{http.StatusBadRequest, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body."}
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var headers strings.Builder
	for _, h := range signed {
		vals := r.Header.Values(h)
		if h == "host" {
			vals = []string{r.Host}
		}
		for i := range vals {
			vals[i] = strings.TrimSpace(vals[i])
		}
		slices.Sort(vals)
		fmt.Fprintf(&headers, "%s:%s\n", h, strings.Join(vals, ","))
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{r.Method, rfc3986(path), canonicalQuery(r.URL.Query()), headers.String(), fields["SignedHeaders"], payload}, "\n")
	digest := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(s.opts.AccessKeySecret))
	mac.Write([]byte(v3Algorithm + "\n" + hex.EncodeToString(digest[:])))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(fields["Signature"])) {
		return errSignature.copy()
	}
	return nil
}

// checkRPC checks the classic signature: Signature = base64(HMAC-SHA1(secret + "&",
// METHOD + "&%2F&" + escape(sorted, escaped parameters without Signature))).
func (s *Server) checkRPC(r *http.Request, params url.Values) error {
	if params.Get("Signature") == "" || params.Get("SignatureMethod") == "" {
		return errUnsigned.copy()
	}
	if err := s.checkKey(params.Get("AccessKeyId")); err != nil {
		return err
	}
	if s.opts.AccessKeySecret == "" {
		return nil
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" {
		return &apiError{http.StatusBadRequest, "InvalidParameter.SignatureMethod", "Unsupported signature method " + params.Get("SignatureMethod") + "."}
	}
	rest := url.Values{}
	for k, vs := range params {
		if k != "Signature" {
			rest[k] = vs
		}
	}
	toSign := r.Method + "&%2F&" + url.QueryEscape(rfc3986(rest.Encode()))
	mac := hmac.New(sha1.New, []byte(s.opts.AccessKeySecret+"&"))
	mac.Write([]byte(toSign))
	if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(mac.Sum(nil))), []byte(params.Get("Signature"))) {
		return errSignature.copy()
	}
	return nil
}

// canonicalQuery is V3's canonical query string: keys sorted, values percent-encoded
// as RFC 3986 says, "k=" for an empty value.
func canonicalQuery(q url.Values) string {
	keys := slices.Sorted(maps.Keys(q))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+rfc3986(url.QueryEscape(q.Get(k))))
	}
	return strings.Join(parts, "&")
}

// rfc3986 turns Go's form encoding into RFC 3986 percent-encoding, as the signatures need.
func rfc3986(s string) string {
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(s)
}
