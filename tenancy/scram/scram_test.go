package scram

import (
	"errors"
	"testing"
)

// The exchange of RFC 7677, section 3.
const (
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcExchange(t *testing.T, password string) *Exchange {
	t.Helper()
	salt, _ := b64.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	s, err := MakeVerifier(password, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifier(s)
	if err != nil {
		t.Fatal(err)
	}
	e := NewExchange(v, false)
	if _, err := e.First(rfcClientFirst); err != nil {
		t.Fatal(err)
	}
	// Pin the server nonce to the RFC's.
	e.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	e.serverFirst = rfcServerFirst
	return e
}

func TestRFC7677Vector(t *testing.T) {
	got, err := rfcExchange(t, "pencil").Final(rfcClientFinal)
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	if got != rfcServerFinal {
		t.Fatalf("server-final = %q, want %q", got, rfcServerFinal)
	}
}

func TestWrongPasswordAndMock(t *testing.T) {
	if _, err := rfcExchange(t, "pencil2").Final(rfcClientFinal); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: got %v", err)
	}
	e := NewExchange(MockVerifier("nobody", []byte("secret")), true)
	if _, err := e.First(rfcClientFirst); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Final("c=biws,r=x,p=AAAA"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("mock: got %v", err)
	}
	for _, bad := range []string{"", "p,,n=u,r=x", "n,,n=u"} {
		if _, err := NewExchange(MockVerifier("u", nil), true).First(bad); err == nil {
			t.Errorf("client-first %q accepted", bad)
		}
	}
}

func FuzzExchange(f *testing.F) {
	f.Add(rfcClientFirst, rfcClientFinal)
	f.Add("y,,n=,r=abc", "c=eSws,r=abc,p=")
	f.Fuzz(func(t *testing.T, first, final string) {
		e := NewExchange(MockVerifier("u", []byte("k")), false)
		if _, err := e.First(first); err != nil {
			return
		}
		_, _ = e.Final(final) // must not panic
	})
}
