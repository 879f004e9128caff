// Package scram implements the server side of SCRAM-SHA-256 (RFC 5802,
// RFC 7677) as PostgreSQL speaks it, and the verifiers it stores: the
// password itself is never stored, only
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// (base64), PostgreSQL's own format. Channel binding is not offered
// (no SCRAM-SHA-256-PLUS), so clients send gs2 header "n,," or "y,,".
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mechanism is the SASL mechanism name.
const Mechanism = "SCRAM-SHA-256"

// Iterations is the PBKDF2 iteration count of new verifiers (PostgreSQL's
// default, scram_iterations = 4096).
const Iterations = 4096

// ErrAuthFailed is returned for any failed exchange; callers report it as
// 28P01 without saying why.
var ErrAuthFailed = errors.New("scram: authentication failed")

var b64 = base64.StdEncoding

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Verifier is a parsed stored verifier.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// NewVerifier derives the verifier of password with a random salt.
func NewVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return MakeVerifier(password, salt, Iterations)
}

// MakeVerifier derives the verifier of password with the given salt.
func MakeVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, []byte("Server Key"))
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64.EncodeToString(salt),
		b64.EncodeToString(stored[:]), b64.EncodeToString(serverKey)), nil
}

// ParseVerifier reads a stored verifier.
func ParseVerifier(s string) (Verifier, error) {
	var v Verifier
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	iterSalt, keys, ok2 := strings.Cut(rest, "$")
	iter, salt, ok3 := strings.Cut(iterSalt, ":")
	stored, server, ok4 := strings.Cut(keys, ":")
	if !ok || !ok2 || !ok3 || !ok4 {
		return v, errors.New("scram: malformed verifier")
	}
	var err error
	if v.Iterations, err = strconv.Atoi(iter); err != nil || v.Iterations < 1 {
		return v, errors.New("scram: malformed verifier iterations")
	}
	if v.Salt, err = b64.DecodeString(salt); err != nil {
		return v, errors.New("scram: malformed verifier salt")
	}
	if v.StoredKey, err = b64.DecodeString(stored); err != nil || len(v.StoredKey) != sha256.Size {
		return v, errors.New("scram: malformed verifier stored key")
	}
	if v.ServerKey, err = b64.DecodeString(server); err != nil || len(v.ServerKey) != sha256.Size {
		return v, errors.New("scram: malformed verifier server key")
	}
	return v, nil
}

// MockVerifier is used for an unknown user, so that the exchange looks the
// same as for a real one (the salt is derived from the name and a secret)
// and fails at the end, as PostgreSQL does.
func MockVerifier(user string, secret []byte) Verifier {
	salt := hmacSHA256(secret, []byte("mock salt:"+user))[:16]
	return Verifier{Iterations: Iterations, Salt: salt, StoredKey: make([]byte, sha256.Size), ServerKey: make([]byte, sha256.Size)}
}

// Exchange is one server-side SCRAM exchange. Use it once: First, then
// Final.
type Exchange struct {
	v               Verifier
	mock            bool
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// NewExchange starts an exchange against v; mock marks a verifier from
// MockVerifier, for which Final always fails.
func NewExchange(v Verifier, mock bool) *Exchange { return &Exchange{v: v, mock: mock} }

// First takes the client-first-message and returns the
// server-first-message.
func (e *Exchange) First(clientFirst string) (string, error) {
	gs2, bare, ok := cutGS2(clientFirst)
	if !ok || (gs2 != "n,," && gs2 != "y,,") {
		return "", fmt.Errorf("%w: unsupported or malformed gs2 header", ErrAuthFailed)
	}
	attrs := parseAttrs(bare)
	cnonce := attrs["r"]
	if cnonce == "" || strings.ContainsAny(cnonce, ",") {
		return "", fmt.Errorf("%w: missing client nonce", ErrAuthFailed)
	}
	snonce := make([]byte, 18)
	if _, err := rand.Read(snonce); err != nil {
		return "", err
	}
	e.clientFirstBare = bare
	e.nonce = cnonce + b64.EncodeToString(snonce)
	e.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", e.nonce, b64.EncodeToString(e.v.Salt), e.v.Iterations)
	return e.serverFirst, nil
}

// cutGS2 splits "n,,n=user,r=nonce" into "n,," and the bare message.
func cutGS2(msg string) (string, string, bool) {
	i := strings.Index(msg, ",")
	if i < 0 {
		return "", "", false
	}
	j := strings.Index(msg[i+1:], ",")
	if j < 0 {
		return "", "", false
	}
	return msg[:i+j+2], msg[i+j+2:], true
}

func parseAttrs(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && len(k) == 1 {
			m[k] = v
		}
	}
	return m
}

// Final takes the client-final-message, checks the proof and returns the
// server-final-message. Any failure is ErrAuthFailed.
func (e *Exchange) Final(clientFinal string) (string, error) {
	if e.serverFirst == "" {
		return "", fmt.Errorf("%w: final before first", ErrAuthFailed)
	}
	withoutProof, proofPart, ok := strings.Cut(clientFinal, ",p=")
	if !ok {
		return "", fmt.Errorf("%w: missing proof", ErrAuthFailed)
	}
	attrs := parseAttrs(withoutProof)
	if attrs["r"] != e.nonce {
		return "", fmt.Errorf("%w: nonce mismatch", ErrAuthFailed)
	}
	if cb := attrs["c"]; cb != "biws" && cb != "eSws" { // base64 of "n,," and "y,,"
		return "", fmt.Errorf("%w: channel binding", ErrAuthFailed)
	}
	proof, err := b64.DecodeString(proofPart)
	if err != nil || len(proof) != sha256.Size {
		return "", fmt.Errorf("%w: malformed proof", ErrAuthFailed)
	}
	authMessage := []byte(e.clientFirstBare + "," + e.serverFirst + "," + withoutProof)
	clientSignature := hmacSHA256(e.v.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for i := range clientKey {
		clientKey[i] = proof[i] ^ clientSignature[i]
	}
	stored := sha256.Sum256(clientKey)
	if e.mock || subtle.ConstantTimeCompare(stored[:], e.v.StoredKey) != 1 {
		return "", ErrAuthFailed
	}
	return "v=" + b64.EncodeToString(hmacSHA256(e.v.ServerKey, authMessage)), nil
}
