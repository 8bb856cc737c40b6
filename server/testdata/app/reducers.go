// Command app is the server's test module.
package main

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

var errNotLoggedIn = errors.New("Unauthorized: You must be logged in to create a post.")

func setting(key string) (string, bool) {
	s, ok := SettingTable.FilterByKey(key)
	return s.Value, ok
}

// ClientConnected refuses connections while the setting "refuse" holds a
// reason, and counts connections otherwise.
func ClientConnected(ctx *stdb.ReducerContext) error {
	if reason, ok := setting("refuse"); ok {
		return errors.New(reason)
	}
	return bump("connected")
}

func ClientDisconnected(ctx *stdb.ReducerContext) error { return bump("disconnected") }

func bump(key string) error {
	s, ok := SettingTable.FilterByKey(key)
	if !ok {
		_, err := SettingTable.Insert(Setting{Key: key, Value: "1"})
		return err
	}
	s.Value += "1"
	return SettingTable.UpdateByKey(s)
}

// Auth verifies a token with the host's issuers and makes sure the user has
// a profile.
func Auth(ctx *stdb.ReducerContext, token string) (stdb.Identity, error) {
	tok, err := stdb.VerifyToken(token)
	if err != nil {
		return stdb.Identity{}, err
	}
	id := tok.Identity
	if _, ok := UserTable.FilterByIdentityID(id); !ok {
		if _, err := UserTable.Insert(User{IdentityID: id, Username: tok.Subject, Email: tok.Subject + "@example.com", CreatedAt: uint64(ctx.Timestamp.Micros())}); err != nil {
			return stdb.Identity{}, err
		}
	}
	stdb.Infof("authenticated %s", tok.Subject)
	return id, nil
}

func CreatePost(ctx *stdb.ReducerContext, content string) (uint64, error) {
	if ctx.Caller.IsZero() {
		return 0, errNotLoggedIn
	}
	if _, ok := UserTable.FilterByIdentityID(ctx.Caller); !ok {
		return 0, errors.New("Unauthorized: No user profile found for this identity.")
	}
	p, err := PostTable.Insert(Post{AuthorIdentityID: ctx.Caller, Content: content, CreatedAt: uint64(ctx.Timestamp.Micros())})
	if err != nil {
		return 0, err
	}
	stdb.Infof("Post created successfully by identity: %s", ctx.Caller)
	return p.PostID, nil
}

func UpdateProfile(ctx *stdb.ReducerContext, newUsername, newEmail string) error {
	if ctx.Caller.IsZero() {
		return errors.New("Unauthorized: You must be logged in to update your profile.")
	}
	u, ok := UserTable.FilterByIdentityID(ctx.Caller)
	if !ok {
		return errors.New("Unauthorized: No user profile found for this identity.")
	}
	u.Username, u.Email = newUsername, newEmail
	return UserTable.UpdateByIdentityID(u)
}

func SetSetting(ctx *stdb.ReducerContext, key, value string) error {
	if _, ok := SettingTable.FilterByKey(key); ok {
		return SettingTable.UpdateByKey(Setting{Key: key, Value: value})
	}
	_, err := SettingTable.Insert(Setting{Key: key, Value: value})
	return err
}

func Add(ctx *stdb.ReducerContext, a, b int32) (int64, error) { return int64(a) + int64(b), nil }

func Fail(ctx *stdb.ReducerContext, msg string) error { return errors.New(msg) }

var sink uint64

// Spin never returns: the host's deadline stops it.
func Spin(ctx *stdb.ReducerContext) error {
	for i := uint64(0); ; i++ {
		sink += i
	}
}

func Whoami(ctx *stdb.ReducerContext) (stdb.Identity, error) { return ctx.Caller, nil }

// MyClaim returns the claim name of the caller's token as a string, or none
// when the caller has no token or the token lacks the claim.
func MyClaim(ctx *stdb.ReducerContext, name string) (*string, error) {
	b, ok, err := stdb.CallerClaims()
	if err != nil || !ok {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	v, ok := claims[name].(string)
	if !ok {
		return nil, nil
	}
	return &v, nil
}

// Crash exits the instance: a trap, not a reducer error.
func Crash(ctx *stdb.ReducerContext, code uint32) error {
	os.Exit(int(code))
	return nil
}

// EditPost changes a post's content (anyone may, in this test module).
func EditPost(ctx *stdb.ReducerContext, postID uint64, content string) error {
	p, ok := PostTable.FilterByPostID(postID)
	if !ok {
		return errors.New("no such post")
	}
	p.Content = content
	return PostTable.UpdateByPostID(p)
}

func DeletePost(ctx *stdb.ReducerContext, postID uint64) error {
	ok, err := PostTable.DeleteByPostID(postID)
	if err == nil && !ok {
		return errors.New("no such post")
	}
	return err
}
