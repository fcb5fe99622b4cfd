// Package auth verifies the agents' Bearer JWTs (HS256) and decides who may act on whom.
package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgate/chatgate/internal/httpx"
)

// Role is what a token holder may do. Each role includes the ones below it: admin ⊃ supervisor ⊃ agent.
type Role string

const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
	RoleAdmin      Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case RoleAgent:
		return 1
	case RoleSupervisor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole accepts agent, supervisor or admin.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", fmt.Errorf("unknown role %q: use agent, supervisor or admin", s)
	}
	return r, nil
}

// AtLeast reports whether r includes the rights of min.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() }

// Claims are what a chatgate token carries: sub is the agent id.
type Claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// Principal is the verified caller of a request.
type Principal struct {
	Agent string
	Role  Role
	// ExpiresAt is when the token stops being valid: long-lived requests (event streams) end then.
	ExpiresAt time.Time
}

var (
	ErrInvalidToken  = httpx.ErrInvalidToken
	ErrNotPermitted  = httpx.ErrForbidden
	ErrRoleRequired  = httpx.ErrRoleRequired
	errWrongAlg      = errors.New("unexpected signing method")
	errNoSubject     = errors.New("token has no subject")
	errUnknownRole   = errors.New("token has an unknown role")
	errUnknownAgent  = errors.New("token names an agent that is not configured")
	errTooLong       = errors.New("token lives longer than the configured maximum")
	errMalformed     = errors.New("token is malformed")
	principalLocal   = "chatgate.principal"
	signingAlgorithm = jwt.SigningMethodHS256
)

// leeway absorbs clock skew between the minting host and this one.
const leeway = 5 * time.Second

// Verifier checks tokens against the current secret and, during rotation, the previous one.
type Verifier struct {
	secrets [][]byte
	issuer  string
	parser  *jwt.Parser
	maxTTL  time.Duration
	known   func(agent string) bool
	now     func() time.Time // the parser's clock too
	cache   tokenCache
}

// maxCachedTokens bounds the verified-token cache: an agent's client sends one token for hours, so
// a few thousand entries hold every live session of a replica while an attacker who mints nothing
// valid cannot add any.
const maxCachedTokens = 4096

// tokenCache keeps the principal of each token that passed every check, until the token's exp, so
// that a request with a token seen before costs one map lookup instead of a JSON decode and an HMAC.
// Only verified tokens enter it, keyed by the whole token (signature included).
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]Principal
}

func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	c.mu.Lock()
	p, ok := c.entries[token]
	if ok && !now.Before(p.ExpiresAt) {
		delete(c.entries, token)
		ok = false
	}
	c.mu.Unlock()
	return p, ok
}

func (c *tokenCache) put(token string, p Principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]Principal)
	}
	if len(c.entries) >= maxCachedTokens {
		for t, e := range c.entries { // expired ones first
			if !now.Before(e.ExpiresAt) {
				delete(c.entries, t)
			}
		}
		for t := range c.entries { // then any: map order is random
			if len(c.entries) < maxCachedTokens {
				break
			}
			delete(c.entries, t)
		}
	}
	c.entries[strings.Clone(token)] = p // the caller's string may alias a reused request buffer
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// WithMaxTTL refuses tokens that live longer than d: exp − iat, or exp − now when iat is missing.
func (v *Verifier) WithMaxTTL(d time.Duration) *Verifier {
	v.maxTTL = d
	return v
}

// WithAgents refuses agent tokens whose subject is not a configured agent (known reports it).
// Supervisor and admin tokens name a person who need not take cards, so any subject is theirs.
func (v *Verifier) WithAgents(known func(agent string) bool) *Verifier {
	v.known = known
	return v
}

// NewVerifier builds a Verifier; previous may be empty.
func NewVerifier(secret, previous, issuer string) *Verifier {
	v := &Verifier{issuer: issuer, secrets: [][]byte{[]byte(secret)}, now: time.Now}
	if previous != "" {
		v.secrets = append(v.secrets, []byte(previous))
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{signingAlgorithm.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(leeway), jwt.WithTimeFunc(func() time.Time { return v.now() })}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v
}

// Verify returns the principal of a valid token. A token verified before and not yet expired comes
// from the cache; whether its agent is still configured is checked on every call all the same.
func (v *Verifier) Verify(token string) (Principal, error) {
	now := v.now()
	p, ok := v.cache.get(token, now)
	if !ok {
		var err error
		if p, err = v.verify(token, now); err != nil {
			return Principal{}, err
		}
		// A token past its exp but inside the leeway is accepted above, never kept.
		if now.Before(p.ExpiresAt) {
			v.cache.put(token, p, now)
		}
	}
	if p.Role == RoleAgent && v.known != nil && !v.known(p.Agent) {
		return Principal{}, errUnknownAgent
	}
	return p, nil
}

// verify checks the token's signature, claims and lifetime (not its agent: Verify does, every time).
func (v *Verifier) verify(token string, now time.Time) (Principal, error) {
	var lastErr error
	for _, secret := range v.secrets {
		var claims Claims
		_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
			if t.Method != signingAlgorithm {
				return nil, errWrongAlg
			}
			return secret, nil
		})
		if err != nil {
			lastErr = err
			continue
		}
		if claims.Subject == "" {
			return Principal{}, errNoSubject
		}
		if claims.Role.rank() == 0 {
			return Principal{}, errUnknownRole
		}
		if err := strictDates(token); err != nil {
			return Principal{}, err
		}
		if v.maxTTL > 0 {
			from := now
			if claims.IssuedAt != nil {
				from = claims.IssuedAt.Time
			}
			if claims.ExpiresAt.Time.Sub(from) > v.maxTTL+leeway {
				return Principal{}, errTooLong
			}
		}
		p := Principal{Agent: claims.Subject, Role: claims.Role}
		if claims.ExpiresAt != nil {
			p.ExpiresAt = claims.ExpiresAt.Time
		}
		return p, nil
	}
	return Principal{}, lastErr
}

// strictDates refuses exp, iat and nbf that are not JSON numbers. RFC 7519 makes a NumericDate a
// number, but golang-jwt also reads a string such as "9999999999" as one.
func strictDates(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errMalformed
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errMalformed
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return errMalformed
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		raw, ok := claims[name]
		if !ok {
			continue
		}
		if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			return fmt.Errorf("token claim %s is not a NumericDate", name)
		}
	}
	return nil
}

// Mint signs a token for an agent; used by `chatgate token`, scripts and tests.
func Mint(secret, issuer, agent string, role Role, ttl time.Duration, now time.Time) (string, error) {
	if agent == "" {
		return "", errNoSubject
	}
	if role.rank() == 0 {
		return "", errUnknownRole
	}
	claims := Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   agent,
		Issuer:    issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(signingAlgorithm, claims).SignedString([]byte(secret))
}

// BearerToken is the token of an Authorization header's Bearer credentials; the scheme's name is
// case-insensitive (RFC 9110, 11.1), so "bearer" and "BEARER" name it too.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// Middleware rejects requests without a valid Bearer token (401) and stores the principal.
func (v *Verifier) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, ok := BearerToken(c.Get(fiber.HeaderAuthorization))
		if !ok {
			return ErrInvalidToken
		}
		p, err := v.Verify(token)
		if err != nil {
			return ErrInvalidToken.Wrap(err)
		}
		c.Locals(principalLocal, p)
		return c.Next()
	}
}

// Require lets through principals holding at least min (use after Middleware).
func Require(min Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !Caller(c).Role.AtLeast(min) {
			return ErrRoleRequired
		}
		return c.Next()
	}
}

// Caller returns the verified principal of the request (zero when Middleware did not run).
func Caller(c *fiber.Ctx) Principal {
	p, _ := c.Locals(principalLocal).(Principal)
	return p
}

// Subject resolves an agent id from a path: "me" is the caller. Callers act on themselves; acting on
// another agent needs the supervisor role.
func Subject(c *fiber.Ctx, id string) (string, error) {
	p := Caller(c)
	if id == "me" || id == p.Agent {
		return p.Agent, nil
	}
	if p.Role.AtLeast(RoleSupervisor) {
		return strings.Clone(id), nil
	}
	return "", ErrNotPermitted
}
