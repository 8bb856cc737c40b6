package main

import (
	"errors"
	"fmt"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

// Added for read permissions (grant_access): private messages and an
// admin-only dashboard. Who may *read* them is decided by the host from the
// schema's grants; these reducers decide who may *write*.

// roleAdmin is the role that opens AdminDashboard (and every profile and
// role) through the grants.
const roleAdmin = "admin"

var (
	errMessageNotLoggedIn = errors.New("Unauthorized: You must be logged in to send a message.")
	errNotAdmin           = errors.New("Unauthorized: Only an admin can do this.")
)

// SendMessage stores a message from the caller to recipient. The grants make
// it visible to those two identities only.
func SendMessage(ctx *stdb.ReducerContext, recipient stdb.Identity, content string) error {
	if ctx.Caller.IsZero() {
		return errMessageNotLoggedIn
	}
	if _, ok := UserTable.FilterByIdentityID(ctx.Caller); !ok {
		return errNoProfile
	}
	if _, ok := UserTable.FilterByIdentityID(recipient); !ok {
		return fmt.Errorf("Unknown recipient: no user has identity %s; they must log in (call auth) once first.", recipient)
	}
	if content == "" {
		return errors.New("A message cannot be empty.")
	}
	// The sender comes from the caller, never from the arguments.
	if _, err := PrivateMessageTable.Insert(PrivateMessage{
		Sender:    ctx.Caller,
		Recipient: recipient,
		Content:   content,
		SentAt:    uint64(ctx.Timestamp.Micros()),
	}); err != nil {
		return err
	}
	stdb.Infof("Message sent by %s to %s", ctx.Caller, recipient)
	return nil
}

// isAdmin reports whether id holds the admin role.
func isAdmin(id stdb.Identity) bool {
	r, ok := UserRoleTable.FilterByIdentityID(id)
	return ok && r.Role == roleAdmin
}

// MakeAdmin gives a user the admin role. Only an admin may call it, so the
// role spreads only from admins; the first admin comes from a token whose
// trusted issuer asserts it (see Auth), never from a client's say-so.
func MakeAdmin(ctx *stdb.ReducerContext, identity stdb.Identity) error {
	if ctx.Caller.IsZero() || !isAdmin(ctx.Caller) {
		return errNotAdmin
	}
	if _, ok := UserTable.FilterByIdentityID(identity); !ok {
		return fmt.Errorf("Unknown user: no user has identity %s; they must log in (call auth) once first.", identity)
	}
	return grantAdmin(ctx, identity, ctx.Caller)
}

// grantAdmin records the admin role for identity, granted by by (zero: by
// the token's issuer).
func grantAdmin(ctx *stdb.ReducerContext, identity, by stdb.Identity) error {
	row := UserRole{IdentityID: identity, Role: roleAdmin, GrantedBy: by, GrantedAt: uint64(ctx.Timestamp.Micros())}
	if old, ok := UserRoleTable.FilterByIdentityID(identity); ok {
		if old.Role == roleAdmin {
			return nil
		}
		if err := UserRoleTable.UpdateByIdentityID(row); err != nil {
			return err
		}
	} else if _, err := UserRoleTable.Insert(row); err != nil {
		return err
	}
	stdb.Infof("Identity %s is now an admin (granted by %s)", identity, by)
	return nil
}

// PostAdminNote adds a note to the admin dashboard; only admins may.
func PostAdminNote(ctx *stdb.ReducerContext, content string) error {
	if ctx.Caller.IsZero() || !isAdmin(ctx.Caller) {
		return errNotAdmin
	}
	_, err := AdminDashboardTable.Insert(AdminDashboard{
		AuthorIdentityID: ctx.Caller,
		Content:          content,
		CreatedAt:        uint64(ctx.Timestamp.Micros()),
	})
	return err
}
