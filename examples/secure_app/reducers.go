package main

import (
	"errors"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

// Errors the reducers fail with; the messages are the tutorial's.
var (
	errNotLoggedIn = errors.New("Unauthorized: You must be logged in to create a post.")
	errNoProfile   = errors.New("Unauthorized: No user profile found for this identity.")
)

// CreatePost stores a post by the calling user.
func CreatePost(ctx *stdb.ReducerContext, content string) error {
	// Authorization: the all-zero identity is a caller that has not
	// authenticated through the auth reducer.
	if ctx.Caller.IsZero() {
		return errNotLoggedIn
	}
	// A complete user has a profile row.
	if _, ok := UserTable.FilterByIdentityID(ctx.Caller); !ok {
		return errNoProfile
	}
	// The author comes from the caller, never from the arguments, so a
	// client cannot post as someone else. PostID 0 asks for the next id.
	if _, err := PostTable.Insert(Post{
		AuthorIdentityID: ctx.Caller,
		Content:          content,
		CreatedAt:        uint64(ctx.Timestamp.Micros()),
	}); err != nil {
		return err
	}
	stdb.Infof("Post created successfully by identity: %s", ctx.Caller)
	return nil
}

// UpdateProfile changes the caller's own username and email; it can reach
// no other row, because the key is the caller's identity.
func UpdateProfile(ctx *stdb.ReducerContext, newUsername, newEmail string) error {
	if ctx.Caller.IsZero() {
		return errors.New("Unauthorized: You must be logged in to update your profile.")
	}
	user, ok := UserTable.FilterByIdentityID(ctx.Caller)
	if !ok {
		return errNoProfile
	}
	user.Username = newUsername
	user.Email = newEmail
	if err := UserTable.UpdateByIdentityID(user); err != nil {
		return err
	}
	stdb.Infof("Profile updated by identity: %s", ctx.Caller)
	return nil
}
