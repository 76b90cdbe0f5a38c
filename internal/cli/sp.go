package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/datadir"
	"github.com/berth-dev/berth/internal/identity"
)

const spUsage = `Usage:
  berth sp create [--name NAME] [--data-dir DIR] [--endpoint URL]
  berth sp list   [--data-dir DIR] [--endpoint URL]
  berth sp delete [--data-dir DIR] [--endpoint URL] APP_ID|OBJECT_ID
`

// sp runs `berth sp …`: service principals through the running berth's
// Microsoft Graph endpoint, as the well-known service principal.
func sp(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 {
		fmt.Fprint(stderr, spUsage)
		return errors.New("sp: a subcommand is required")
	}
	fs := flag.NewFlagSet("sp "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", datadir.Default(), "data directory of the server")
	endpoint := fs.String("endpoint", "", "berth's endpoint (default: the data directory's address)")
	name := fs.String("name", "", "display name of the new service principal (create; default berth-sp-DATE)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := newGraphClient(*dir, *endpoint)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch args[0] {
	case "create":
		if fs.NArg() != 0 {
			return fmt.Errorf("sp create: unexpected argument %q", fs.Arg(0))
		}
		n := *name
		if n == "" {
			n = "berth-sp-" + time.Now().UTC().Format("2006-01-02-15-04-05")
		}
		out, err := c.create(ctx, n)
		if err != nil {
			return err
		}
		return printJSON(stdout, out)
	case "list":
		var out struct {
			Value []map[string]any `json:"value"`
		}
		if err := c.do(ctx, "GET", "/v1.0/servicePrincipals", nil, &out); err != nil {
			return err
		}
		return printJSON(stdout, out.Value)
	case "delete":
		if fs.NArg() != 1 {
			return errors.New("sp delete: one APP_ID or OBJECT_ID is required")
		}
		return c.delete(ctx, fs.Arg(0))
	default:
		fmt.Fprint(stderr, spUsage)
		return fmt.Errorf("sp: unknown subcommand %q", args[0])
	}
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// graphClient calls berth's Graph subset with a Graph token of the
// well-known service principal.
type graphClient struct {
	base  string
	http  *http.Client
	token string
}

func newGraphClient(dir, endpoint string) (*graphClient, error) {
	d, err := datadir.Open(dir, "")
	if err != nil {
		return nil, err
	}
	base := endpoint
	if base == "" {
		base = "https://" + d.Config.Addr
	}
	base = strings.TrimRight(base, "/")
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: d.PKI.CertPool(), MinVersion: tls.VersionTLS12}
	return &graphClient{base: base, http: &http.Client{Transport: t, Timeout: 30 * time.Second}}, nil
}

// login gets a Graph token with the client-credentials grant.
func (c *graphClient) login(ctx context.Context) error {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {identity.DefaultClientID},
		"client_secret": {identity.DefaultClientSecret}, "scope": {identity.AudienceGraph + "/.default"}}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/"+identity.DefaultTenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is berth running? %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		return fmt.Errorf("getting a Graph token: %s %s", resp.Status, out.Error)
	}
	c.token = out.AccessToken
	return nil
}

// do sends a Graph request; out may be nil.
func (c *graphClient) do(ctx context.Context, method, path string, body, out any) error {
	if c.token == "" {
		if err := c.login(ctx); err != nil {
			return err
		}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// created is what `berth sp create` prints (az ad sp create-for-rbac's shape).
type created struct {
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
	Password    string `json:"password"`
	Tenant      string `json:"tenant"`
}

// create makes an application, its secret and its service principal, as
// az ad sp create-for-rbac does; on failure the application is removed.
func (c *graphClient) create(ctx context.Context, name string) (*created, error) {
	var app struct {
		ID, AppID, DisplayName string
	}
	if err := c.do(ctx, "POST", "/v1.0/applications", map[string]any{"displayName": name}, &app); err != nil {
		return nil, err
	}
	undo := func(err error) (*created, error) {
		if derr := c.do(ctx, "DELETE", "/v1.0/applications/"+url.PathEscape(app.ID), nil, nil); derr != nil {
			return nil, fmt.Errorf("%w (and removing the application failed: %v)", err, derr)
		}
		return nil, err
	}
	var pw struct {
		SecretText string `json:"secretText"`
	}
	end := time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)
	if err := c.do(ctx, "POST", "/v1.0/applications/"+url.PathEscape(app.ID)+"/addPassword",
		map[string]any{"passwordCredential": map[string]any{"displayName": "rbac", "endDateTime": end}}, &pw); err != nil {
		return undo(err)
	}
	if err := c.do(ctx, "POST", "/v1.0/servicePrincipals", map[string]any{"appId": app.AppID, "accountEnabled": true}, nil); err != nil {
		return undo(err)
	}
	return &created{AppID: app.AppID, DisplayName: app.DisplayName, Password: pw.SecretText, Tenant: identity.DefaultTenantID}, nil
}

// delete removes a service principal (by appId or object id) and its
// application: its tokens stop working at once.
func (c *graphClient) delete(ctx context.Context, id string) error {
	q := "'" + strings.ReplaceAll(id, "'", "''") + "'"
	var sps struct {
		Value []struct{ ID, AppID, ServicePrincipalType string } `json:"value"`
	}
	if err := c.do(ctx, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("servicePrincipalNames/any(c:c eq "+q+")"), nil, &sps); err != nil {
		return err
	}
	appID := ""
	if len(sps.Value) > 0 {
		appID = sps.Value[0].AppID
	} else {
		var sp struct{ AppID string }
		if err := c.do(ctx, "GET", "/v1.0/servicePrincipals/"+url.PathEscape(id), nil, &sp); err != nil {
			return err
		}
		appID = sp.AppID
	}
	var apps struct {
		Value []struct{ ID string } `json:"value"`
	}
	if err := c.do(ctx, "GET", "/v1.0/applications?$filter="+url.QueryEscape("appId eq '"+appID+"'"), nil, &apps); err != nil {
		return err
	}
	if len(apps.Value) == 0 {
		return fmt.Errorf("sp delete: %s is not a service principal's application (managed identities are deleted with their resource)", id)
	}
	return c.do(ctx, "DELETE", "/v1.0/applications/"+url.PathEscape(apps.Value[0].ID), nil, nil)
}
