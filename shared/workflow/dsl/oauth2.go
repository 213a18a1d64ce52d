package dsl

import "fmt"

// OAuth2 grant types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// OAuth2 client authentication methods.
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	ClientSecretJWT   = "client_secret_jwt"
	PrivateKeyJWT     = "private_key_jwt"
	ClientAuthNone    = "none"
)

// OAuth2Auth holds the properties of an oauth2 or oidc policy written inline.
// String fields may be runtime expressions; Raw is the policy as written,
// which the engine evaluates when it renders a call.
type OAuth2Auth struct {
	Authority string
	Grant     string // default client_credentials
	Client    OAuth2Client
	Encoding  string // request.encoding
	Issuers   []string
	Scopes    []string
	Audiences []string
	Username  string
	Password  string
	Subject   *OAuth2Token
	Actor     *OAuth2Token
	// TokenEndpoint is endpoints.token (oauth2 only), relative to the
	// authority; default /oauth2/token.
	TokenEndpoint string
	Raw           map[string]any
}

// OAuth2Client is the client of an OAuth2 policy.
type OAuth2Client struct {
	ID             string
	Secret         string
	Assertion      string
	Authentication string // default client_secret_post
}

// OAuth2Token is a security token given to a token exchange.
type OAuth2Token struct {
	Token string
	Type  string
}

var oauth2Grants = []string{GrantAuthorizationCode, GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantTokenExchange}

// oauth2 decodes the inline properties of an oauth2 or oidc policy.
func (d *decoder) oauth2(v *node, p, scheme string) *OAuth2Auth {
	allowed := []string{"authority", "grant", "client", "request", "issuers", "scopes", "audiences", "username", "password", "subject", "actor"}
	if scheme == AuthOAuth2 {
		allowed = append(allowed, "endpoints")
	}
	if !d.object(v, p, scheme+" authentication", allowed) {
		return nil
	}
	o := &OAuth2Auth{
		Authority: d.str(v, "authority", p),
		Grant:     d.enum(v, "grant", p, oauth2Grants...),
		Username:  d.str(v, "username", p),
		Password:  d.str(v, "password", p),
		Issuers:   d.stringList(v, "issuers", p),
		Scopes:    d.stringList(v, "scopes", p),
		Audiences: d.stringList(v, "audiences", p),
		Raw:       v.value().(map[string]any),
	}
	if c := v.get("client"); v.has("client") {
		cp := join(p, "client")
		if d.object(c, cp, "oauth2 client", []string{"id", "secret", "assertion", "authentication"}) {
			o.Client = OAuth2Client{ID: d.str(c, "id", cp), Secret: d.str(c, "secret", cp), Assertion: d.str(c, "assertion", cp),
				Authentication: d.enum(c, "authentication", cp, ClientSecretBasic, ClientSecretPost, ClientSecretJWT, PrivateKeyJWT, ClientAuthNone)}
		}
	}
	if r := v.get("request"); v.has("request") {
		rp := join(p, "request")
		if d.object(r, rp, "oauth2 token request", []string{"encoding"}) {
			o.Encoding = d.enum(r, "encoding", rp, "application/x-www-form-urlencoded", "application/json")
		}
	}
	for _, k := range []string{"subject", "actor"} {
		if t := v.get(k); v.has(k) {
			tp := join(p, k)
			if d.object(t, tp, "oauth2 token", []string{"token", "type"}, "token", "type") {
				tok := &OAuth2Token{Token: d.str(t, "token", tp), Type: d.str(t, "type", tp)}
				if k == "subject" {
					o.Subject = tok
				} else {
					o.Actor = tok
				}
			}
		}
	}
	if e := v.get("endpoints"); v.has("endpoints") {
		ep := join(p, "endpoints")
		if d.object(e, ep, "oauth2 endpoints", []string{"token", "revocation", "introspection"}) {
			o.TokenEndpoint = d.str(e, "token", ep)
		}
	}
	d.scanExprs(v, p)
	return o
}

// stringList decodes an array of strings; absent gives nil.
func (d *decoder) stringList(m *node, key, ptr string) []string {
	v := m.get(key)
	if v == nil && !m.has(key) {
		return nil
	}
	p := join(ptr, key)
	if kindOf(v) != "array" {
		d.fail(v, p, "%s must be an array of strings, not %s", key, kindOf(v))
		return nil
	}
	out := make([]string, 0, len(v.items))
	for i, it := range v.items {
		if it == nil || it.kind != kindString {
			d.fail(it, idx(p, i), "%s must hold strings, not %s", key, kindOf(it))
			continue
		}
		out = append(out, it.str)
	}
	return out
}

// oauth2Policy checks what KNHK can do with an inline oauth2 or oidc policy:
// the grants a server can use on its own (client_credentials, password,
// token exchange), client secrets sent by basic or post, or a client
// assertion given ready-made.
func (v *validator) oauth2Policy(a *AuthenticationPolicy, ptr string) {
	o := a.OAuth2
	if o == nil {
		return
	}
	p := join(ptr, a.Scheme)
	switch o.Grant {
	case GrantAuthorizationCode:
		v.add(join(p, "grant"), "unsupported: the authorization_code grant needs a user's browser; use client_credentials, password or token exchange")
	case GrantRefreshToken:
		v.add(join(p, "grant"), "unsupported: the refresh_token grant as the first grant (the policy has no property for a refresh token); tokens that come with a refresh token are refreshed with it")
	}
	if o.Authority == "" {
		v.add(p, fmt.Sprintf("%s authentication needs an authority (the issuer's base URI)", a.Scheme))
	}
	switch o.Client.Authentication {
	case ClientSecretJWT, PrivateKeyJWT:
		if o.Client.Assertion == "" {
			v.add(join(join(p, "client"), "authentication"), fmt.Sprintf("unsupported: %s without client.assertion (KNHK sends a ready-made assertion, it does not sign one)", o.Client.Authentication))
		}
	}
	if o.Encoding == "application/json" {
		v.add(join(join(p, "request"), "encoding"), "unsupported: JSON-encoded token requests (KNHK sends application/x-www-form-urlencoded, as RFC 6749 requires)")
	}
	switch o.Grant {
	case GrantPassword:
		if o.Username == "" || o.Password == "" {
			v.add(p, "the password grant needs username and password")
		}
	case GrantTokenExchange:
		if o.Subject == nil {
			v.add(p, "the token exchange grant needs a subject token")
		}
	}
}
