package shopmigrate

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	legacydb "github.com/decoupledshop/shop/gen/sqlc/legacy"
)

// UserMapping decides which OIDC subject (the token's sub) a legacy user
// becomes. A user named in the mapping file gets the subject it gives;
// otherwise, with EmailRule, the user's email in lower case; otherwise none.
// Deleted users, users without a subject, and users whose subject another
// legacy user (with a lower id) already took are unmapped: their carts and
// wishlists are carried under UnmappedPrefix + legacy id, a subject no
// issuer hands out, and each is reported.
type UserMapping struct {
	// ByEmail maps lower-case emails to subjects; ByID legacy user ids.
	ByEmail map[string]string
	ByID    map[int64]string
	// EmailRule maps users the file does not name to their email.
	EmailRule bool
	// UnmappedPrefix starts the subject of unmapped users' carts.
	UnmappedPrefix string
}

// DefaultUnmappedPrefix is the default UserMapping.UnmappedPrefix.
const DefaultUnmappedPrefix = "legacy-unmapped:"

// LoadUserMap reads a mapping file: CSV lines "key,subject", where key is a
// legacy user's email (case-insensitive) or id; blank lines and lines
// starting with # are skipped. It fails naming the line of a bad entry or
// of a key given twice.
func LoadUserMap(path string) (byEmail map[string]string, byID map[int64]string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment, r.FieldsPerRecord, r.TrimLeadingSpace = '#', 2, true
	byEmail, byID = map[string]string{}, map[int64]string{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return byEmail, byID, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		key, sub := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if key == "" || sub == "" || len(sub) > 255 {
			return nil, nil, fmt.Errorf("%s:%d: want \"email-or-id,subject\" with a subject of 1 to 255 characters", path, line)
		}
		if id, err := strconv.ParseInt(key, 10, 64); err == nil {
			if _, dup := byID[id]; dup {
				return nil, nil, fmt.Errorf("%s:%d: user id %d mapped twice", path, line, id)
			}
			byID[id] = sub
			continue
		}
		key = strings.ToLower(key)
		if _, dup := byEmail[key]; dup {
			return nil, nil, fmt.Errorf("%s:%d: email %s mapped twice", path, line, key)
		}
		byEmail[key] = sub
	}
}

// userRow is a legacy user and the subject it became.
type userRow struct {
	id      int64
	email   string
	subject string
	mapped  bool
	reason  string // why unmapped
}

// users maps every legacy user to a subject. Subjects stored by an earlier
// run (in the cart database's shopmigrate.users) win, so reruns and
// catch-ups keep them; new users are decided by the mapping. It returns
// the subjects by legacy id, the new rows to store, and one problem per
// unmapped user. Memory: one map entry per legacy user.
func (um UserMapping) users(ctx context.Context, legacy *legacydb.Queries, stored map[int64]string) (map[int64]string, []userRow, []Problem, error) {
	rows, err := legacy.ListUsers(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read legacy users: %w", err)
	}
	subjects := map[int64]string{}
	takenBy := map[string]int64{}
	for id, sub := range stored {
		subjects[id], takenBy[sub] = sub, id
	}
	var fresh []userRow
	var problems []Problem
	for _, lu := range rows {
		u, deleted := userRow{id: lu.ID, email: lu.Email}, lu.Deleted
		if sub, ok := stored[u.id]; ok {
			if !strings.HasPrefix(sub, um.UnmappedPrefix) {
				continue
			}
			problems = append(problems, Problem{Kind: "unmapped-user", Table: "users", LegacyID: u.id,
				Detail: "unmapped in an earlier pass", Resolution: "carts and wishlists carried under " + sub})
			continue
		}
		r := userRow{id: u.id, email: u.email}
		cand, ok := um.ByID[u.id]
		if !ok {
			cand, ok = um.ByEmail[strings.ToLower(strings.TrimSpace(u.email))]
		}
		if !ok && um.EmailRule {
			cand = strings.ToLower(strings.TrimSpace(u.email))
		}
		switch other, taken := takenBy[cand]; {
		case deleted:
			r.reason = "deleted user"
		case cand == "":
			r.reason = "no subject in the mapping"
		case len(cand) > 255:
			r.reason = "subject longer than 255 characters"
		case taken:
			r.reason = fmt.Sprintf("subject %q already taken by legacy user %d (never merged)", cand, other)
		default:
			r.subject, r.mapped = cand, true
		}
		if !r.mapped {
			r.subject = um.UnmappedPrefix + strconv.FormatInt(u.id, 10)
			problems = append(problems, Problem{Kind: "unmapped-user", Table: "users", LegacyID: u.id,
				Detail: r.reason, Resolution: "carts and wishlists carried under " + r.subject})
		}
		subjects[u.id], takenBy[r.subject] = r.subject, u.id
		fresh = append(fresh, r)
	}
	return subjects, fresh, problems, nil
}
