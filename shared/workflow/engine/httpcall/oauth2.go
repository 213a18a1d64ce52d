package httpcall

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/knhk/knhk/shared/history"
)

const errAuthentication = "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"

// OAuth2 grants KNHK uses.
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// DefaultTokenEndpoint is the DSL's default oauth2 token endpoint, relative
// to the authority.
const DefaultTokenEndpoint = "/oauth2/token"

// DefaultEarlyRefresh is how long before its expiry a cached token is
// replaced by a new one.
const DefaultEarlyRefresh = time.Minute

// OAuth2 is a resolved oauth2 or oidc policy, with the DSL's property names
// (so that a secret holding the policy decodes into it).
type OAuth2 struct {
	Authority string   `json:"authority"`
	Grant     string   `json:"grant,omitempty"` // default client_credentials
	Client    Client2  `json:"client,omitzero"`
	Scopes    []string `json:"scopes,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
	Issuers   []string `json:"issuers,omitempty"`
	Username  string   `json:"username,omitempty"`
	Password  string   `json:"password,omitempty"`
	Subject   *Token2  `json:"subject,omitempty"`
	Actor     *Token2  `json:"actor,omitempty"`
	Endpoints struct {
		Token string `json:"token,omitempty"`
	} `json:"endpoints,omitzero"`
	Request struct {
		Encoding string `json:"encoding,omitempty"`
	} `json:"request,omitzero"`
}

// Client2 is an OAuth2 client.
type Client2 struct {
	ID             string `json:"id,omitempty"`
	Secret         string `json:"secret,omitempty"`
	Assertion      string `json:"assertion,omitempty"`
	Authentication string `json:"authentication,omitempty"` // default client_secret_post
}

// Token2 is a security token given to a token exchange.
type Token2 struct {
	Token string `json:"token"`
	Type  string `json:"type"`
}

// DecodeOAuth2 reads a policy from its JSON-like form (evaluated inline
// properties or a secret's value).
func DecodeOAuth2(v any) (*OAuth2, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var o OAuth2
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// tokens caches one token source per client configuration.
type tokens struct {
	mu      sync.Mutex
	sources map[[32]byte]oauth2.TokenSource
	issuers map[string]string // authority → discovered token endpoint
}

const maxTokenSources = 1024

// Authorization returns the Authorization header value of a policy: basic
// and bearer as given, oauth2 and oidc with a token from the policy's token
// endpoint, cached per client configuration and replaced EarlyRefresh
// before it expires.
func (c *Client) Authorization(ctx context.Context, a *Auth) (string, *history.Error) {
	switch a.Scheme {
	case "basic":
		if a.Username == "" || a.Password == "" {
			return "", problem(errAuthentication, 401, "basic authentication: the username or password is empty")
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)), nil
	case "bearer":
		if a.Token == "" {
			return "", problem(errAuthentication, 401, "bearer authentication: the token is empty")
		}
		return "Bearer " + a.Token, nil
	case "oauth2", "oidc":
		if a.OAuth2 == nil {
			return "", problem(errConfiguration, 400, "%s authentication without properties", a.Scheme)
		}
		tok, perr := c.token(ctx, a.Scheme, a.OAuth2)
		if perr != nil {
			return "", perr
		}
		return tok.Type() + " " + tok.AccessToken, nil
	}
	return "", problem(errConfiguration, 400, "unsupported authentication scheme %q", a.Scheme)
}

func (c *Client) token(ctx context.Context, scheme string, o *OAuth2) (*oauth2.Token, *history.Error) {
	if o.Authority == "" {
		return nil, problem(errConfiguration, 400, "%s authentication needs an authority", scheme)
	}
	tokenURL := ""
	if scheme == "oidc" {
		u, perr := c.discover(ctx, o)
		if perr != nil {
			return nil, perr
		}
		tokenURL = u
	} else {
		tokenURL = joinEndpoint(o.Authority, o.Endpoints.Token)
	}
	key, err := json.Marshal(struct {
		URL string
		P   *OAuth2
	}{tokenURL, o})
	if err != nil {
		return nil, problem(errConfiguration, 400, "%s authentication: %v", scheme, err)
	}
	sum := sha256.Sum256(key)
	c.tok.mu.Lock()
	src := c.tok.sources[sum]
	if src == nil {
		f, perr := c.fetcher(tokenURL, o)
		if perr != nil {
			c.tok.mu.Unlock()
			return nil, perr
		}
		early := c.EarlyRefresh
		if early <= 0 {
			early = DefaultEarlyRefresh
		}
		src = oauth2.ReuseTokenSourceWithExpiry(nil, f, early)
		if c.tok.sources == nil || len(c.tok.sources) >= maxTokenSources {
			c.tok.sources = map[[32]byte]oauth2.TokenSource{}
		}
		c.tok.sources[sum] = src
	}
	c.tok.mu.Unlock()
	tok, err := src.Token()
	if err != nil {
		return nil, problem(errAuthentication, 401, "%s token from %s: %v", scheme, tokenURL, err)
	}
	if tok.AccessToken == "" {
		return nil, problem(errAuthentication, 401, "%s token from %s: no access token in the response", scheme, tokenURL)
	}
	return tok, nil
}

// joinEndpoint resolves the token endpoint against the authority: an
// absolute URI as is, a path below the authority's.
func joinEndpoint(authority, endpoint string) string {
	if endpoint == "" {
		endpoint = DefaultTokenEndpoint
	}
	if u, err := url.Parse(endpoint); err == nil && u.IsAbs() {
		return endpoint
	}
	return strings.TrimRight(authority, "/") + "/" + strings.TrimLeft(endpoint, "/")
}

// discover reads the authority's OpenID Connect discovery document (once
// per authority) and returns its token endpoint. The document's issuer
// must be the authority, and one of the policy's issuers when it names
// any.
func (c *Client) discover(ctx context.Context, o *OAuth2) (string, *history.Error) {
	if len(o.Issuers) > 0 && !slices.Contains(o.Issuers, o.Authority) {
		return "", problem(errAuthentication, 401, "oidc authority %s is not among the policy's issuers", o.Authority)
	}
	c.tok.mu.Lock()
	u, ok := c.tok.issuers[o.Authority]
	c.tok.mu.Unlock()
	if ok {
		return u, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.httpClient(true)), strings.TrimRight(o.Authority, "/"))
	if err != nil {
		return "", problem(errAuthentication, 401, "oidc discovery at %s: %v", o.Authority, err)
	}
	u = p.Endpoint().TokenURL
	if u == "" {
		return "", problem(errAuthentication, 401, "oidc discovery at %s: no token_endpoint", o.Authority)
	}
	c.tok.mu.Lock()
	if c.tok.issuers == nil {
		c.tok.issuers = map[string]string{}
	}
	c.tok.issuers[o.Authority] = u
	c.tok.mu.Unlock()
	return u, nil
}

// fetcher is a token source that asks the token endpoint for a new token
// on every call (the reuse source around it caches).
type fetcher struct {
	hc    *http.Client
	fetch func(ctx context.Context, last *oauth2.Token) (*oauth2.Token, error)
	mu    sync.Mutex
	last  *oauth2.Token
}

// Token implements oauth2.TokenSource.
func (f *fetcher) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, f.hc)
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	t, err := f.fetch(ctx, last)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.last = t
	f.mu.Unlock()
	return t, nil
}

func (c *Client) fetcher(tokenURL string, o *OAuth2) (*fetcher, *history.Error) {
	style := oauth2.AuthStyleInParams
	secret := o.Client.Secret
	params := url.Values{}
	switch o.Client.Authentication {
	case "", "client_secret_post":
	case "client_secret_basic":
		style = oauth2.AuthStyleInHeader
	case "none":
		secret = ""
	case "client_secret_jwt", "private_key_jwt":
		if o.Client.Assertion == "" {
			return nil, problem(errConfiguration, 400, "%s needs client.assertion (KNHK does not sign assertions)", o.Client.Authentication)
		}
	default:
		return nil, problem(errConfiguration, 400, "unsupported client authentication %q", o.Client.Authentication)
	}
	if o.Client.Assertion != "" {
		secret = ""
		params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		params.Set("client_assertion", o.Client.Assertion)
	}
	if o.Request.Encoding != "" && o.Request.Encoding != "application/x-www-form-urlencoded" {
		return nil, problem(errConfiguration, 400, "unsupported token request encoding %q", o.Request.Encoding)
	}
	for _, a := range o.Audiences {
		params.Add("audience", a)
	}
	f := &fetcher{hc: c.httpClient(false)}
	switch o.Grant {
	case "", GrantClientCredentials, GrantTokenExchange:
		cc := clientcredentials.Config{ClientID: o.Client.ID, ClientSecret: secret, TokenURL: tokenURL, Scopes: o.Scopes,
			AuthStyle: style, EndpointParams: params}
		if o.Grant == GrantTokenExchange {
			if o.Subject == nil || o.Subject.Token == "" {
				return nil, problem(errConfiguration, 400, "the token exchange grant needs a subject token")
			}
			params.Set("grant_type", GrantTokenExchange)
			params.Set("subject_token", o.Subject.Token)
			params.Set("subject_token_type", o.Subject.Type)
			if o.Actor != nil && o.Actor.Token != "" {
				params.Set("actor_token", o.Actor.Token)
				params.Set("actor_token_type", o.Actor.Type)
			}
		}
		f.fetch = func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) { return cc.Token(ctx) }
	case GrantPassword:
		if o.Client.Assertion != "" || len(o.Audiences) > 0 {
			return nil, problem(errConfiguration, 400, "the password grant takes neither a client assertion nor audiences here")
		}
		cfg := oauth2.Config{ClientID: o.Client.ID, ClientSecret: secret, Scopes: o.Scopes,
			Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: style}}
		f.fetch = func(ctx context.Context, last *oauth2.Token) (*oauth2.Token, error) {
			if last != nil && last.RefreshToken != "" {
				// A token that came with a refresh token is refreshed
				// with it; the password grant is the fallback.
				if t, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: last.RefreshToken}).Token(); err == nil {
					return t, nil
				}
			}
			return cfg.PasswordCredentialsToken(ctx, o.Username, o.Password)
		}
	default:
		return nil, problem(errConfiguration, 400, "unsupported: the %s grant (KNHK uses client_credentials, password and token exchange)", o.Grant)
	}
	return f, nil
}
