package registrytoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTTL is how long an issued token lives when Issuer.TTL is zero.
// The spec asks for at least 60 s; registries re-ask when it ends.
const DefaultTTL = 5 * time.Minute

// Issuer signs registry tokens.
type Issuer struct {
	// Name is the token's iss claim: the registry's auth.token.issuer.
	Name string
	// Service is the token's aud claim: the registry's auth.token.service.
	Service string
	// TTL is how long a token is valid; DefaultTTL if zero.
	TTL time.Duration
	// Now returns the current time; time.Now if nil.
	Now func() time.Time

	key    crypto.Signer
	method jwt.SigningMethod
	x5c    []string
	kid    string
}

// NewIssuer returns an issuer that signs with key, whose certificate is cert
// (the certificate the registry's rootcertbundle holds, or one that chains to
// it). The key is ECDSA (P-256, P-384 or P-521) or RSA (2048 bits or more).
func NewIssuer(name, service string, key crypto.Signer, cert *x509.Certificate) (*Issuer, error) {
	if name == "" || service == "" {
		return nil, errors.New("token issuer: issuer name and service are required")
	}
	method, err := signingMethod(key)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, errors.New("token issuer: the certificate is not for the signing key")
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &Issuer{
		Name: name, Service: service,
		key: key, method: method,
		x5c: []string{base64.StdEncoding.EncodeToString(cert.Raw)},
		kid: kid,
	}, nil
}

// LoadIssuer is NewIssuer with the key and certificate read from PEM files.
func LoadIssuer(name, service, keyFile, certFile string) (*Issuer, error) {
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading token key: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading token certificate: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing certificate: %w", certFile, err)
	}
	iss, err := NewIssuer(name, service, key, cert)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", keyFile, certFile, err)
	}
	return iss, nil
}

// ParseKeyPEM parses a PEM private key: PKCS#8, SEC 1 ("EC PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY").
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return s, nil
}

func signingMethod(key crypto.Signer) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
		return nil, fmt.Errorf("token issuer: unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("token issuer: RSA key of %d bits, want at least 2048", k.N.BitLen())
		}
		return jwt.SigningMethodRS256, nil
	}
	return nil, fmt.Errorf("token issuer: unsupported key type %T (want ECDSA or RSA)", key)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// KeyID returns the libtrust key ID of pub, the form distribution 2.8 looks a
// token's kid up by in its rootcertbundle: the SHA-256 of the DER PKIX public
// key, truncated to 240 bits, base32 without padding, in groups of four
// separated by colons.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	groups := make([]string, 0, len(s)/4)
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:min(i+4, len(s))])
	}
	return strings.Join(groups, ":"), nil
}

// Token is an issued token, as the token endpoint returns it.
type Token struct {
	Token     string    `json:"token"`
	ExpiresIn int       `json:"expires_in"`
	IssuedAt  time.Time `json:"issued_at"`
}

// claims are the JWT claims distribution reads (registry/auth/token ClaimSet
// in 2.8: aud is one string, not a list).
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	Expires   int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
}

func numeric(sec int64) *jwt.NumericDate { return jwt.NewNumericDate(time.Unix(sec, 0)) }

func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return numeric(c.Expires), nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return numeric(c.IssuedAt), nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return numeric(c.NotBefore), nil }
func (c *claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings{c.Audience}, nil }

// Issue signs a token for subject granting exactly access. The caller has
// decided that subject may have it.
func (i *Issuer) Issue(subject string, access []Access) (Token, error) {
	now := time.Now
	if i.Now != nil {
		now = i.Now
	}
	ttl := i.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := now().Truncate(time.Second)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return Token{}, fmt.Errorf("making token id: %w", err)
	}
	if access == nil {
		access = []Access{}
	}
	c := &claims{
		Issuer: i.Name, Subject: subject, Audience: i.Service,
		Expires: t.Add(ttl).Unix(), NotBefore: t.Unix(), IssuedAt: t.Unix(),
		ID: hex.EncodeToString(jti[:]), Access: access,
	}
	tok := jwt.NewWithClaims(i.method, c)
	tok.Header["kid"] = i.kid
	tok.Header["x5c"] = i.x5c
	s, err := tok.SignedString(i.key)
	if err != nil {
		return Token{}, fmt.Errorf("signing token: %w", err)
	}
	return Token{Token: s, ExpiresIn: int(ttl / time.Second), IssuedAt: t.UTC()}, nil
}

// GenerateKey makes an ECDSA P-256 key and a self-signed certificate for it,
// valid from an hour ago for validity, both PEM-encoded: what a registry's
// rootcertbundle and an issuer's key file hold.
func GenerateKey(commonName string, validity time.Duration) (keyPEM, certPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, fmt.Errorf("making serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
