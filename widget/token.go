package widget

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// visitorAudience keeps visitor tokens and agent tokens apart even if a key were shared.
const visitorAudience = "chatgate-webchat-visitor"

// Tokens mints and verifies visitor tokens: HS256 JWTs bound to one site and one visitor, signed
// with a key derived from the agents' JWT secret, so an agent token is never a visitor token and a
// visitor token is never an agent token.
type Tokens struct {
	keys   [][]byte // current, then previous (rotation)
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
	// resume checks signature and audience only; Resume bounds the age itself.
	resume *jwt.Parser
}

// ResumeWindow is how long after its expiry a token may still renew its visitor's session, so a
// visitor who comes back the next day keeps the conversation.
const ResumeWindow = 7 * 24 * time.Hour

// VisitorClaims are what a visitor token carries: sub is the visitor id.
type VisitorClaims struct {
	Site  string `json:"site"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	jwt.RegisteredClaims
}

// NewTokens derives the visitor-token keys from the agents' JWT secrets (previous may be empty).
func NewTokens(secret, previous string, ttl time.Duration, now func() time.Time) *Tokens {
	if ttl <= 0 {
		ttl = 2 * time.Hour
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{ttl: ttl, now: now, parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(visitorAudience), jwt.WithExpirationRequired(), jwt.WithTimeFunc(now)),
		resume: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithoutClaimsValidation())}
	for _, s := range []string{secret, previous} {
		if s != "" {
			mac := hmac.New(sha256.New, []byte(s))
			mac.Write([]byte(visitorAudience))
			t.keys = append(t.keys, mac.Sum(nil))
		}
	}
	return t
}

// Mint returns a token for the visitor of site (with the name and e-mail it gave) and its expiry.
func (t *Tokens) Mint(site, visitor, name, email string) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	claims := VisitorClaims{Site: site, Name: name, Email: email, RegisteredClaims: jwt.RegisteredClaims{Subject: visitor, Audience: jwt.ClaimStrings{visitorAudience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp)}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.keys[0])
	return s, exp, err
}

var (
	errTokenClaims   = errors.New("visitor token lacks site or subject")
	errTokenTooOld   = errors.New("visitor token expired too long ago to resume")
	errTokenAudience = errors.New("not a visitor token")
)

// Resume returns the claims of a token this gateway signed that is valid or expired less than
// ResumeWindow ago: the visitor it names may have a new token for the same site.
func (t *Tokens) Resume(token string) (VisitorClaims, error) {
	var err error
	for _, key := range t.keys {
		var claims VisitorClaims
		_, err = t.resume.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return key, nil })
		if err != nil {
			if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				continue
			}
			return VisitorClaims{}, err
		}
		switch {
		case len(claims.Audience) != 1 || claims.Audience[0] != visitorAudience:
			return VisitorClaims{}, errTokenAudience
		case claims.Site == "" || claims.Subject == "" || claims.ExpiresAt == nil:
			return VisitorClaims{}, errTokenClaims
		case t.now().Sub(claims.ExpiresAt.Time) > ResumeWindow:
			return VisitorClaims{}, errTokenTooOld
		}
		return claims, nil
	}
	return VisitorClaims{}, err
}

// Verify returns the claims of a valid token: its site, and its visitor as Subject.
func (t *Tokens) Verify(token string) (VisitorClaims, error) {
	var err error
	for _, key := range t.keys {
		var claims VisitorClaims
		_, err = t.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return key, nil })
		if err == nil {
			if claims.Site == "" || claims.Subject == "" {
				return VisitorClaims{}, errTokenClaims
			}
			return claims, nil
		}
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return VisitorClaims{}, err
		}
	}
	return VisitorClaims{}, err
}
