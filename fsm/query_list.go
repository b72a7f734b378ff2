package fsm

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
)

// ListSecrets with filters and sort orders (shared/spec §4.7).
//
// Every sort order is an index of the secrets table, and a listing walks
// that index from a cursor with LowerBound (ascending) or
// ReverseLowerBound (descending), applying the filters to each secret it
// passes. A page therefore costs O(secrets scanned), never a copy or a sort
// of the table; a selective filter scans more secrets per page, bounded by
// ListQuery.ScanLimit.
//
// The orders and the position ("pos") of a secret in each:
//
//	created-date        index "list"     pos = ListKey (CreatedDate, ARN)
//	name                index "name"     pos = Name (names are unique)
//	last-changed-date   index "changed"  pos = LastChangedDate ‖ ARN
//	last-accessed-date  index "accessed" pos = LastAccessedDate ‖ ARN
//
// A cursor is the pos of the last secret a page examined; the next page
// starts strictly after it (before it, descending). It is a position in
// the order, not a reference to a secret, so secrets created or deleted
// between pages neither shift nor repeat the others. CreatedDate and Name
// never change, so in those orders every secret that exists throughout a
// listing is listed exactly once. LastChangedDate and LastAccessedDate do
// change: a secret whose date moves during a listing moves in the order,
// and is listed at its new position if the walk has not passed it yet —
// so it can be listed twice (moved from behind the cursor to ahead of it)
// or not at all (moved from ahead of the cursor to behind it). Secrets
// whose date does not change are listed exactly once.

// Sort orders of ListSecrets (the SortBy values).
const (
	SortCreatedDate      = "created-date"
	SortName             = "name"
	SortLastChangedDate  = "last-changed-date"
	SortLastAccessedDate = "last-accessed-date"
)

// Filter keys of ListSecrets.
const (
	FilterName          = "name"
	FilterTagKey        = "tag-key"
	FilterTagValue      = "tag-value"
	FilterPrimaryRegion = "primary-region"
	FilterOwningService = "owning-service"
	FilterDescription   = "description"
	FilterAll           = "all"
)

// ListFilter is one filter of a listing: the secret matches if any value
// matches (a value starting with "!" matches when its remainder does not).
type ListFilter struct {
	Key    string
	Values []string
}

// ListQuery selects and orders a page of secrets.
type ListQuery struct {
	SortBy         string // one of the Sort constants; "" is created-date
	Desc           bool
	IncludeDeleted bool
	// Filters must all match (AND).
	Filters []ListFilter
	// After is the cursor from the previous page's Next; "" starts at the
	// beginning of the order.
	After string
	// Limit is the page size (at least 1).
	Limit int
	// ScanLimit bounds the secrets one page examines; 0 means no bound.
	// When it is reached the page may be short, even empty, and Next is
	// the position of the last secret examined.
	ScanLimit int
}

// ListPage is one page of a listing.
type ListPage struct {
	Secrets []*Secret
	// Next is the cursor for the next page; "" when the listing is done.
	Next string
	// Scanned is how many secrets the page examined.
	Scanned int
}

// sortIndex returns the index an order walks and the position function.
func sortIndex(sortBy string) (string, func(*Secret) string, error) {
	switch sortBy {
	case "", SortCreatedDate:
		return "list", func(s *Secret) string { return s.ListKey }, nil
	case SortName:
		return "name", func(s *Secret) string { return s.Name }, nil
	case SortLastChangedDate:
		return "changed", func(s *Secret) string { return string(dateKey(s.LastChangedDate, s.ARN)) }, nil
	case SortLastAccessedDate:
		return "accessed", func(s *Secret) string { return string(dateKey(s.LastAccessedDate, s.ARN)) }, nil
	}
	return "", nil, fmt.Errorf("unknown sort order %q", sortBy)
}

// ListSecretsPage returns one page of the listing q describes.
func ListSecretsPage(txn *memdb.Txn, q ListQuery) (ListPage, error) {
	index, pos, err := sortIndex(q.SortBy)
	if err != nil {
		return ListPage{}, err
	}
	if q.Limit < 1 {
		return ListPage{}, fmt.Errorf("page size %d", q.Limit)
	}
	filters := compileFilters(q.Filters)
	var it memdb.ResultIterator
	switch {
	case !q.Desc:
		it, err = txn.LowerBound(tableSecrets, index, q.After)
	case q.After == "":
		it, err = txn.GetReverse(tableSecrets, index)
	default:
		it, err = txn.ReverseLowerBound(tableSecrets, index, q.After)
	}
	if err != nil {
		return ListPage{}, err
	}
	var page ListPage
	last := ""
	for obj := it.Next(); obj != nil; obj = it.Next() {
		s := obj.(*Secret)
		p := pos(s)
		if q.After != "" && p == q.After {
			continue // the cursor itself was on the previous page
		}
		if q.ScanLimit > 0 && page.Scanned == q.ScanLimit {
			// Out of budget: the next page continues after the last
			// secret examined.
			page.Next = last
			return page, nil
		}
		page.Scanned++
		last = p
		if s.Scheduled() && !q.IncludeDeleted || !filters.match(s) {
			continue
		}
		if len(page.Secrets) == q.Limit {
			// One more match exists: the next page starts after the last
			// secret of this one.
			page.Next = pos(page.Secrets[len(page.Secrets)-1])
			return page, nil
		}
		page.Secrets = append(page.Secrets, s)
	}
	return page, nil
}

// dateKey orders a date (sign bit flipped, so byte order is numeric
// order), then the ARN as a tie breaker.
func dateKey(date int64, arn string) []byte {
	b := make([]byte, 8, 8+len(arn))
	binary.BigEndian.PutUint64(b, uint64(date)^(1<<63))
	return append(b, arn...)
}

// dateIndex indexes the secrets by one of their dates, then ARN. The
// argument of a lookup is a position: a string of dateKey's bytes.
type dateIndex struct{ date func(*Secret) int64 }

var _ memdb.SingleIndexer = dateIndex{}

func (d dateIndex) FromObject(obj any) (bool, []byte, error) {
	s, ok := obj.(*Secret)
	if !ok {
		return false, nil, fmt.Errorf("date index: %T is not a *Secret", obj)
	}
	return true, dateKey(d.date(s), s.ARN), nil
}

func (dateIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("date index: want one argument, got %d", len(args))
	}
	p, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("date index: argument %T is not a string", args[0])
	}
	return []byte(p), nil
}

// compiled filters: values split and lowercased once per page.
type compiledFilter struct {
	key    string
	values []compiledValue
}

type compiledValue struct {
	negate bool
	raw    string   // for the prefix keys, case-sensitive
	words  []string // for all and description, lowercased
}

type compiledFilters []compiledFilter

func compileFilters(fs []ListFilter) compiledFilters {
	out := make(compiledFilters, 0, len(fs))
	for _, f := range fs {
		cf := compiledFilter{key: f.Key}
		for _, v := range f.Values {
			cv := compiledValue{}
			if rest, ok := strings.CutPrefix(v, "!"); ok {
				cv.negate, v = true, rest
			}
			cv.raw = v
			if f.Key == FilterAll || f.Key == FilterDescription {
				cv.words = appendLowerWords(nil, v)
			}
			cf.values = append(cf.values, cv)
		}
		out = append(out, cf)
	}
	return out
}

// match: every filter matches (AND).
func (fs compiledFilters) match(s *Secret) bool {
	for i := range fs {
		if !fs[i].match(s) {
			return false
		}
	}
	return true
}

// match: any value matches (OR); a negated value matches when its
// remainder does not.
func (f *compiledFilter) match(s *Secret) bool {
	var attrWords []string // for all/description, split once
	split := false
	for _, v := range f.values {
		var m bool
		switch f.key {
		case FilterName:
			m = strings.HasPrefix(s.Name, v.raw)
		case FilterTagKey:
			for _, t := range s.Tags {
				if m = strings.HasPrefix(t.Key, v.raw); m {
					break
				}
			}
		case FilterTagValue:
			for _, t := range s.Tags {
				if m = strings.HasPrefix(t.Value, v.raw); m {
					break
				}
			}
		case FilterPrimaryRegion:
			// Replicated secrets only: a replica's primary region, or a
			// primary's own when it has replicas.
			if pr := s.PrimaryRegionName(); pr != "" {
				m = strings.HasPrefix(pr, v.raw)
			}
		case FilterOwningService:
			// Coffer has no managing services: no secret has the
			// attribute, so only a negation matches.
			m = false
		case FilterDescription, FilterAll:
			if !split {
				attrWords, split = searchAttributes(s, f.key), true
			}
			m = wordsMatch(v.words, attrWords)
		}
		if m != v.negate {
			return true
		}
	}
	return false
}

// searchAttributes returns the words, lowercased, of the attributes a word
// filter searches, pooled: the description, and for all also the name and
// every tag key and value. AWS searches them together, so the words of one
// value may match in different attributes ("prod payments" matches a
// secret tagged env=prod, team=payments).
func searchAttributes(s *Secret, key string) []string {
	out := appendLowerWords(nil, s.Description)
	if key == FilterAll {
		out = appendLowerWords(out, s.Name)
		for _, t := range s.Tags {
			out = appendLowerWords(out, t.Key)
			out = appendLowerWords(out, t.Value)
		}
	}
	return out
}

// wordsMatch: every value word is a prefix of some attribute word. A value
// without words matches everything, as an empty prefix does.
func wordsMatch(value, attr []string) bool {
	for _, w := range value {
		found := false
		for _, a := range attr {
			if strings.HasPrefix(a, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Words splits text into the words the all and description filters match
// (shared/spec §4.7; AWS's user guide, "Find secrets in AWS Secrets
// Manager": the search "ignores special characters ... and only uses
// numbers and letters", and words are separated by a change of case or
// from letter to number). A word is a run of letters and digits: text is
// split at every other character (white space, / _ + = . @ - : and
// anything else, none of which is part of a word), at lower→Upper case
// transitions ("MyTest" → "My", "Test"; "USA" stays one word) and at
// letter↔digit transitions ("db01" → "db", "01"). Case is kept; no word
// is empty. Combining marks stay in the word of the letter they follow.
func Words(text string) []string {
	return appendWords(nil, text, false)
}

// appendLowerWords appends the words of text, lowercased.
func appendLowerWords(out []string, text string) []string {
	return appendWords(out, text, true)
}

// Kinds of character for Words.
const (
	runeOther = iota // a separator
	runeLower        // a letter that is not upper case
	runeUpper
	runeDigit
)

func runeKind(r rune) int {
	switch {
	case r < utf8.RuneSelf: // ASCII fast path
		switch {
		case 'a' <= r && r <= 'z':
			return runeLower
		case 'A' <= r && r <= 'Z':
			return runeUpper
		case '0' <= r && r <= '9':
			return runeDigit
		}
		return runeOther
	case unicode.IsUpper(r):
		return runeUpper
	case unicode.IsLetter(r):
		return runeLower
	case unicode.IsDigit(r):
		return runeDigit
	}
	return runeOther
}

// appendWords appends the words of text (see Words), lowercased if lower.
func appendWords(out []string, text string, lower bool) []string {
	start := -1 // start of the current word, -1 between words
	prev := runeOther
	emit := func(end int) {
		w := text[start:end]
		if lower {
			w = strings.ToLower(w) // no allocation when w has no upper case
		}
		out = append(out, w)
	}
	for i, r := range text {
		k := runeKind(r)
		if k == runeOther && start >= 0 && unicode.IsMark(r) {
			continue // a combining mark belongs to its letter
		}
		boundary := k == runeOther ||
			prev == runeLower && k == runeUpper ||
			(prev == runeDigit) != (k == runeDigit)
		if start >= 0 && boundary {
			emit(i)
			start = -1
		}
		if k != runeOther && start < 0 {
			start = i
		}
		prev = k
	}
	if start >= 0 {
		emit(len(text))
	}
	return out
}
