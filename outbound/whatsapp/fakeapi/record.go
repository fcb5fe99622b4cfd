package fakeapi

import (
	"strings"
	"time"
)

// AddRule installs r after the existing rules and returns its id.
func (s *Server) AddRule(r Rule) (int, error) {
	if err := r.validate(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextRule++
	s.rules = append(s.rules, &RuleState{ID: s.nextRule, Rule: r})
	return s.nextRule, nil
}

// RemoveRule removes one rule; false when there is none with that id.
func (s *Server) RemoveRule(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if r.ID == id {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
			return true
		}
	}
	return false
}

// ClearRules removes every rule: the fake answers normally again.
func (s *Server) ClearRules() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// Rules lists the active rules in the order they apply.
func (s *Server) Rules() []RuleState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RuleState, len(s.rules))
	for i, r := range s.rules {
		out[i] = *r
	}
	return out
}

// applyRules picks the rules matching call, in order: every matching delay
// adds up, and the first matching failure ends the walk. A rule whose Times
// is used up is removed.
func (s *Server) applyRules(call *Call) (time.Duration, *Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var delay time.Duration
	var failure *Rule
	kept := s.rules[:0]
	for _, r := range s.rules {
		if failure == nil && r.Rule.matches(call) {
			delay += time.Duration(r.Rule.Delay)
			r.Applied++
			if r.Rule.fails() {
				rule := r.Rule
				failure = &rule
			}
		}
		if r.Rule.Times == 0 || r.Applied < r.Rule.Times {
			kept = append(kept, r)
		}
	}
	clear(s.rules[len(kept):])
	s.rules = kept
	return delay, failure
}

func (s *Server) recordAccepted(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.perNumber[c.PhoneNumberID]++
	if len(s.accepted) >= s.opts.MaxRecorded {
		s.dropped++
		return
	}
	s.accepted = append(s.accepted, c)
}

func (s *Server) recordFailure(c *Call, e *apiError, injected bool) {
	f := *c
	f.Status, f.Code, f.Injected = e.status, e.code, injected
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) >= s.opts.MaxRecorded {
		s.dropped++
		return
	}
	s.failed = append(s.failed, f)
}

// Calls returns the accepted sends in the order they were answered.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.accepted...)
}

// Failures returns the sends answered with an error after the token check:
// bad bodies and injected failures (Injected true), in order.
func (s *Server) Failures() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.failed...)
}

// CountFor is the number of accepted sends from one phone number id; exact
// even past MaxRecorded.
func (s *Server) CountFor(phoneNumberID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perNumber[phoneNumberID]
}

// CountTo is the number of recorded accepted sends to one recipient (a
// number with or without "+", or a user id).
func (s *Server) CountTo(recipient string) int {
	recipient = strings.TrimPrefix(recipient, "+")
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.accepted {
		if c.Recipient == recipient {
			n++
		}
	}
	return n
}

// Accepted is the number of accepted sends, exact even past MaxRecorded.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Reset forgets the recorded sends and counts; rules stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted, s.failed, s.perNumber = nil, nil, map[string]int{}
	s.total, s.dropped = 0, 0
}
