package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// credentials is what the tool remembers between runs, per server URL: the
// operator identity (who publishes and owns databases) and, per database,
// the session an `auth` call returned (who the end user is).
type credentials struct {
	Servers map[string]*serverCreds `json:"servers"`
}

type serverCreds struct {
	Identity  string                   `json:"identity,omitempty"`
	Token     string                   `json:"token,omitempty"`
	Databases map[string]*sessionCreds `json:"databases,omitempty"`
}

type sessionCreds struct {
	Identity  string     `json:"identity"`
	Token     string     `json:"token"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

const credentialsFile = "credentials.json"

// configDir is $SPACETIME_CONFIG_DIR, else the user's config directory.
func (a *app) configDir() (string, error) {
	if d := a.getenv("SPACETIME_CONFIG_DIR"); d != "" {
		return a.abs(d), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding a directory for credentials: %w; set SPACETIME_CONFIG_DIR", err)
	}
	return filepath.Join(d, "spacetime"), nil
}

func (a *app) credentialsPath() (string, error) {
	d, err := a.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, credentialsFile), nil
}

func (a *app) loadCredentials() (*credentials, error) {
	path, err := a.credentialsPath()
	if err != nil {
		return nil, err
	}
	c := &credentials{Servers: map[string]*serverCreds{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON (%v): fix or delete it (you will get a new operator identity)", path, err)
	}
	if c.Servers == nil {
		c.Servers = map[string]*serverCreds{}
	}
	return c, nil
}

// saveCredentials writes the file with mode 0600 (it holds bearer tokens),
// through a temporary file so that a crash never leaves half a file.
func (a *app) saveCredentials(c *credentials) error {
	path, err := a.credentialsPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("saving credentials: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	return nil
}

// serverKey normalises a server URL so that "http://host:3000/" and
// "http://host:3000" share credentials.
func serverKey(url string) string { return strings.TrimRight(url, "/") }

func (c *credentials) server(url string) *serverCreds {
	k := serverKey(url)
	s := c.Servers[k]
	if s == nil {
		s = &serverCreds{}
		c.Servers[k] = s
	}
	if s.Databases == nil {
		s.Databases = map[string]*sessionCreds{}
	}
	return s
}

// session returns the stored, unexpired session for a database.
func (c *credentials) session(url, db string) *sessionCreds {
	s := c.Servers[serverKey(url)]
	if s == nil || s.Databases == nil {
		return nil
	}
	sess := s.Databases[db]
	if sess == nil || sess.Token == "" {
		return nil
	}
	if sess.ExpiresAt != nil && time.Now().After(*sess.ExpiresAt) {
		return nil
	}
	return sess
}
