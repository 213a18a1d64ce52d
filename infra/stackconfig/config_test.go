package stackconfig

import (
	"strings"
	"testing"
)

func lookupOf(m map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := m[k]; return v, ok }
}

func TestFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		want    Config
		wantErr string
	}{
		{name: "defaults", ctx: nil, want: DefaultConfig()},
		{name: "local from command line", ctx: map[string]any{"env": "local", "maxReceiveCount": "3", "visibilityTimeout": "30"},
			want: Config{Env: EnvLocal, MaxReceiveCount: 3, VisibilityTimeoutSecs: 30, CheckpointKeyAlias: "alias/knhk/checkpoint"}},
		{name: "numbers from cdk.json", ctx: map[string]any{"env": "dev", "maxReceiveCount": float64(7), "visibilityTimeout": float64(720)},
			want: Config{Env: EnvDev, MaxReceiveCount: 7, VisibilityTimeoutSecs: 720, CheckpointKeyAlias: "alias/knhk/checkpoint"}},
		{name: "custom alias", ctx: map[string]any{"checkpointKeyAlias": "alias/acme/knhk-ckpt"},
			want: Config{Env: EnvProd, MaxReceiveCount: 5, VisibilityTimeoutSecs: 360, CheckpointKeyAlias: "alias/acme/knhk-ckpt"}},
		{name: "unknown env", ctx: map[string]any{"env": "staging"}, wantErr: "want prod, dev or local"},
		{name: "receive count zero", ctx: map[string]any{"maxReceiveCount": "0"}, wantErr: "want 1..1000"},
		{name: "receive count too large", ctx: map[string]any{"maxReceiveCount": 1001}, wantErr: "want 1..1000"},
		{name: "receive count not a number", ctx: map[string]any{"maxReceiveCount": "five"}, wantErr: "want an integer"},
		{name: "fractional visibility", ctx: map[string]any{"visibilityTimeout": 1.5}, wantErr: "want an integer"},
		{name: "visibility above 12h", ctx: map[string]any{"visibilityTimeout": "43201"}, wantErr: "want 0..43200"},
		{name: "alias without prefix", ctx: map[string]any{"checkpointKeyAlias": "knhk/checkpoint"}, wantErr: "want alias/NAME"},
		{name: "reserved alias", ctx: map[string]any{"checkpointKeyAlias": "alias/aws/knhk"}, wantErr: "want alias/NAME"},
		{name: "alias with space", ctx: map[string]any{"checkpointKeyAlias": "alias/knhk ckpt"}, wantErr: "want alias/NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromContext(lookupOf(tc.ctx))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDestroyable(t *testing.T) {
	for env, want := range map[Env]bool{EnvProd: false, EnvDev: true, EnvLocal: true} {
		if got := (Config{Env: env}).Destroyable(); got != want {
			t.Errorf("%s: Destroyable = %v, want %v", env, got, want)
		}
	}
}

// FuzzFromContext checks that any command-line context either yields a
// configuration inside the documented bounds or an error, never a panic.
func FuzzFromContext(f *testing.F) {
	f.Add("local", "5", "360", "alias/knhk/checkpoint")
	f.Add("prod", "-1", "1e3", "alias/")
	f.Fuzz(func(t *testing.T, env, mrc, vis, alias string) {
		c, err := FromContext(lookupOf(map[string]any{
			"env": env, "maxReceiveCount": mrc, "visibilityTimeout": vis, "checkpointKeyAlias": alias,
		}))
		if err != nil {
			return
		}
		if c.MaxReceiveCount < 1 || c.MaxReceiveCount > 1000 || c.VisibilityTimeoutSecs < 0 || c.VisibilityTimeoutSecs > 43200 || !validAlias(c.CheckpointKeyAlias) {
			t.Fatalf("out-of-bounds config accepted: %+v", c)
		}
	})
}
