package httpcall

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// idp is an httptest OAuth2 authority: a token endpoint that hands out
// numbered tokens and records each token request's form, and an OpenID
// Connect discovery document.
type idp struct {
	srv       *httptest.Server
	expiresIn int
	refresh   bool // hand out refresh tokens
	fail      bool
	issuer    string // discovery document's issuer ("" : the server's URL)

	mu        sync.Mutex
	requests  []map[string]string
	discovery atomic.Int32
}

func newIDP(t *testing.T, expiresIn int) *idp {
	p := &idp{expiresIn: expiresIn}
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/token", p.token)
	mux.HandleFunc("/connect/token", p.token)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discovery.Add(1)
		iss := p.issuer
		if iss == "" {
			iss = p.srv.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "token_endpoint": p.srv.URL + "/connect/token",
			"authorization_endpoint": p.srv.URL + "/authorize", "jwks_uri": p.srv.URL + "/jwks"})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	form := map[string]string{}
	for k, v := range r.PostForm {
		form[k] = strings.Join(v, " ")
	}
	if u, pw, ok := r.BasicAuth(); ok {
		form["basic"] = u + ":" + pw
	}
	p.mu.Lock()
	p.requests = append(p.requests, form)
	n := len(p.requests)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if p.fail {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	resp := map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": p.expiresIn}
	if p.refresh {
		resp["refresh_token"] = fmt.Sprintf("ref-%d", n)
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (p *idp) forms() []map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]string(nil), p.requests...)
}

// api answers every call with the Authorization header it received.
func api(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"authorization": r.Header.Get("Authorization")})
	}))
	t.Cleanup(s.Close)
	return s
}

func call(t *testing.T, c *Client, target string, a *Auth) (string, error) {
	t.Helper()
	v, perr := c.Do(context.Background(), Request{Method: "GET", URI: target, Auth: a})
	if perr != nil {
		return "", fmt.Errorf("%d %s: %s", perr.Status, perr.Type, perr.Detail)
	}
	return v.(map[string]any)["authorization"].(string), nil
}

func TestOAuth2ClientCredentialsCachesOneTokenPerClient(t *testing.T) {
	p, target := newIDP(t, 3600), api(t)
	c := &Client{}
	auth := &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Grant: GrantClientCredentials,
		Client: Client2{ID: "knhk", Secret: "s3cr3t"}, Scopes: []string{"orders.read", "orders.write"}, Audiences: []string{"orders"}}}
	const n = 25
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = call(t, c, target.URL, auth)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != "Bearer tok-1" {
			t.Fatalf("call %d: %q, %v", i, got[i], errs[i])
		}
	}
	forms := p.forms()
	if len(forms) != 1 {
		t.Fatalf("%d token requests for %d calls, want 1", len(forms), n)
	}
	want := map[string]string{"grant_type": "client_credentials", "client_id": "knhk", "client_secret": "s3cr3t",
		"scope": "orders.read orders.write", "audience": "orders"}
	for k, v := range want {
		if forms[0][k] != v {
			t.Errorf("token request %s = %q, want %q (form %v)", k, forms[0][k], v, forms[0])
		}
	}
	// Another client of the same authority gets its own token.
	other := &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Client: Client2{ID: "other", Secret: "x", Authentication: "client_secret_basic"}}}
	if v, err := call(t, c, target.URL, other); err != nil || v != "Bearer tok-2" {
		t.Fatalf("other client: %q, %v", v, err)
	}
	if f := p.forms()[1]; f["basic"] != "other:x" || f["client_secret"] != "" {
		t.Fatalf("client_secret_basic sent %v", f)
	}
}

func TestOAuth2RefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn int
		want      []string
	}{
		{"a token far from expiry is reused", 3600, []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-1"}},
		// expires_in 30 s is inside the 60 s early-refresh window: every
		// call finds the cached token about to expire and fetches a new one.
		{"a token about to expire is replaced", 30, []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, target := newIDP(t, tc.expiresIn), api(t)
			c := &Client{EarlyRefresh: DefaultEarlyRefresh}
			auth := &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Client: Client2{ID: "knhk", Secret: "s"}}}
			for i, w := range tc.want {
				if v, err := call(t, c, target.URL, auth); err != nil || v != w {
					t.Fatalf("call %d: %q, %v; want %q", i, v, err, w)
				}
			}
		})
	}
}

func TestOAuth2PasswordGrantRefreshesWithItsRefreshToken(t *testing.T) {
	p, target := newIDP(t, 30), api(t)
	p.refresh = true
	c := &Client{}
	auth := &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Grant: GrantPassword, Client: Client2{ID: "knhk", Secret: "s"}, Username: "ada", Password: "pw"}}
	for range 2 {
		if _, err := call(t, c, target.URL, auth); err != nil {
			t.Fatal(err)
		}
	}
	f := p.forms()
	if len(f) != 2 || f[0]["grant_type"] != "password" || f[0]["username"] != "ada" || f[1]["grant_type"] != "refresh_token" || f[1]["refresh_token"] != "ref-1" {
		t.Fatalf("token requests %v", f)
	}
}

func TestOAuth2TokenExchange(t *testing.T) {
	p, target := newIDP(t, 3600), api(t)
	auth := &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Grant: GrantTokenExchange, Client: Client2{ID: "knhk", Secret: "s"},
		Subject: &Token2{Token: "user-jwt", Type: "urn:ietf:params:oauth:token-type:jwt"}, Actor: &Token2{Token: "svc", Type: "urn:ietf:params:oauth:token-type:access_token"}}}
	if _, err := call(t, &Client{}, target.URL, auth); err != nil {
		t.Fatal(err)
	}
	f := p.forms()[0]
	if f["grant_type"] != GrantTokenExchange || f["subject_token"] != "user-jwt" || f["actor_token"] != "svc" || f["subject_token_type"] != "urn:ietf:params:oauth:token-type:jwt" {
		t.Fatalf("token request %v", f)
	}
}

func TestOAuth2Faults(t *testing.T) {
	p, target := newIDP(t, 3600), api(t)
	p.fail = true
	var hits atomic.Int32
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer guarded.Close()
	tests := []struct {
		name string
		auth *Auth
		want string
	}{
		{"the token endpoint refuses", &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Client: Client2{ID: "knhk", Secret: "wrong"}}}, "401 " + errAuthentication + ": oauth2 token from " + p.srv.URL + "/oauth2/token"},
		{"no authority", &Auth{Scheme: "oauth2", OAuth2: &OAuth2{}}, "400 " + errConfiguration},
		{"authorization_code", &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: p.srv.URL, Grant: "authorization_code"}}, "unsupported: the authorization_code grant"},
		{"an authority that is not an issuer", &Auth{Scheme: "oidc", OAuth2: &OAuth2{Authority: p.srv.URL, Issuers: []string{"https://elsewhere"}}}, "not among the policy's issuers"},
		{"an empty bearer token", &Auth{Scheme: "bearer"}, ""},
	}
	for _, tc := range tests[:4] {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(t, &Client{}, guarded.URL, tc.auth)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("the service was called %d times without a token", hits.Load())
	}
	if _, perr := (&Client{}).Authorization(context.Background(), tests[4].auth); perr == nil || perr.Status != 401 {
		t.Fatalf("empty bearer: %+v", perr)
	}
	_ = target
}

func TestOIDCDiscoversTheTokenEndpointOnce(t *testing.T) {
	p, target := newIDP(t, 3600), api(t)
	c := &Client{}
	auth := &Auth{Scheme: "oidc", OAuth2: &OAuth2{Authority: p.srv.URL, Client: Client2{ID: "knhk", Secret: "s"}, Scopes: []string{"openid"}}}
	for range 3 {
		if v, err := call(t, c, target.URL, auth); err != nil || v != "Bearer tok-1" {
			t.Fatalf("%q, %v", v, err)
		}
	}
	if n := p.discovery.Load(); n != 1 {
		t.Fatalf("discovery read %d times, want 1", n)
	}
	if n := len(p.forms()); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// A discovery document whose issuer is not the authority is refused.
	q := newIDP(t, 3600)
	q.issuer = "https://impostor.example"
	_, err := call(t, &Client{}, target.URL, &Auth{Scheme: "oidc", OAuth2: &OAuth2{Authority: q.srv.URL, Client: Client2{ID: "knhk"}}})
	if err == nil || !strings.Contains(err.Error(), "oidc discovery") {
		t.Fatalf("impostor issuer: %v", err)
	}
}

func TestOAuth2NeverRecorded(t *testing.T) {
	r := Request{Method: "GET", URI: "https://x", Auth: &Auth{Scheme: "oauth2", OAuth2: &OAuth2{Authority: "https://idp", Client: Client2{ID: "id", Secret: "s3cr3t-value"}}}}
	data, err := json.Marshal(r.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cr3t-value") || strings.Contains(string(data), "idp") {
		t.Fatalf("recorded form holds the policy: %s", data)
	}
}

func FuzzDecodeOAuth2(f *testing.F) {
	f.Add(`{"authority":"https://idp","client":{"id":"a","secret":"b"},"scopes":["x"]}`)
	f.Add(`{"grant":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		o, err := DecodeOAuth2(v)
		if err == nil && o == nil {
			t.Fatal("nil policy without error")
		}
	})
}
