package devissuer

import (
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// loginPage is the data of the login form.
type loginPage struct {
	Req      authRequest
	Username string
	Error    string
	Users    []demoUser
}

type demoUser struct {
	Name         string
	Roles        string
	PasswordHint bool // the password is the username (demo identities)
}

func (i *Issuer) renderLogin(w http.ResponseWriter, status int, req authRequest, username, msg string) {
	page := loginPage{Req: req, Username: username, Error: msg}
	for _, name := range slices.Sorted(maps.Keys(i.users)) {
		u := i.users[name]
		page.Users = append(page.Users, demoUser{Name: name, Roles: strings.Join(u.Roles, ", "), PasswordHint: u.Password == name})
	}
	writeHTML(w, status, "login", page)
}

func (i *Issuer) renderError(w http.ResponseWriter, status int, msg string) {
	writeHTML(w, status, "error", msg)
}

func writeHTML(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// No form-action: the login form's redirect goes to the client's origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, data)
}

// pages are the issuer's HTML pages; html/template escapes every value.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · development issuer</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem;color:#222}
.dev{background:#fff3cd;border:2px solid #c69500;padding:.6rem .8rem;border-radius:6px;font-weight:600}
.err{background:#fde2e1;border:1px solid #c0392b;padding:.5rem .8rem;border-radius:6px}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.45rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}small{color:#555}
</style></head><body>
<p class="dev" data-testid="dev-issuer-banner">DEVELOPMENT ISSUER: for local development and tests only. Never use it in production.</p>
{{end}}
{{define "login"}}{{template "head"}}
<h1>Sign in</h1>
<p><small>to <b>{{.Req.ClientID}}</b>, returning to <code>{{.Req.RedirectURI}}</code></small></p>
{{with .Error}}<p class="err" role="alert" data-testid="login-error">{{.}}</p>{{end}}
<form method="post" action="authorize">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="code_challenge" value="{{.Req.CodeChallenge}}">
<input type="hidden" name="code_challenge_method" value="S256">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login">Sign in</button>
<button type="submit" id="cancel" name="cancel" value="1" formnovalidate>Cancel</button>
</form>
{{with .Users}}<h2>Demo users</h2><ul data-testid="demo-users">
{{range .}}<li><b>{{.Name}}</b>{{if .PasswordHint}} (password: {{.Name}}){{end}}{{with .Roles}}: role {{.}}{{end}}</li>
{{end}}</ul>{{end}}
</body></html>
{{end}}
{{define "error"}}{{template "head"}}
<h1>Cannot sign in</h1>
<p class="err" role="alert" data-testid="authorize-error">{{.}}</p>
</body></html>
{{end}}`))
