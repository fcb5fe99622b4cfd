package fakeapi

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// registerAdmin mounts the admin API a separate process (an end-to-end test,
// a demo) uses to steer the fake:
//
//	GET    /_fake/calls[?phone_number_id=]  accepted sends, counts
//	GET    /_fake/failures                 sends answered with an error
//	DELETE /_fake/calls                    forget sends and counts
//	GET    /_fake/rules                    active rules
//	POST   /_fake/rules                    add a Rule (JSON) → 201 {"id":n}
//	DELETE /_fake/rules                    remove every rule
//	DELETE /_fake/rules/{id}               remove one rule
func (s *Server) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /_fake/calls", s.admin(s.adminCalls))
	mux.HandleFunc("GET /_fake/failures", s.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"failures": nonNil(s.Failures())})
	}))
	mux.HandleFunc("DELETE /_fake/calls", s.admin(func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /_fake/rules", s.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rules": nonNil(s.Rules())})
	}))
	mux.HandleFunc("POST /_fake/rules", s.admin(s.adminAddRule))
	mux.HandleFunc("DELETE /_fake/rules", s.admin(func(w http.ResponseWriter, r *http.Request) {
		s.ClearRules()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("DELETE /_fake/rules/{id}", s.admin(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || !s.RemoveRule(id) {
			adminError(w, http.StatusNotFound, "not_found", "no rule with that id")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("/_fake/", s.admin(func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, "not_found", "unknown admin path or method")
	}))
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken != "" {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) != 1 {
				adminError(w, http.StatusUnauthorized, "invalid_token", "admin token required")
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) adminCalls(w http.ResponseWriter, r *http.Request) {
	calls := s.Calls()
	if id := r.URL.Query().Get("phone_number_id"); id != "" {
		kept := calls[:0]
		for _, c := range calls {
			if c.PhoneNumberID == id {
				kept = append(kept, c)
			}
		}
		calls = kept
	}
	s.mu.Lock()
	perNumber := make(map[string]int, len(s.perNumber))
	for k, v := range s.perNumber {
		perNumber[k] = v
	}
	accepted, dropped := s.total, s.dropped
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"calls": nonNil(calls), "accepted": accepted, "by_number": perNumber, "dropped": dropped,
	})
}

func (s *Server) adminAddRule(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		adminError(w, http.StatusBadRequest, "bad_request", "could not read the body")
		return
	}
	var rule Rule
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rule); err != nil {
		adminError(w, http.StatusBadRequest, "bad_request", "rule: "+err.Error())
		return
	}
	id, err := s.AddRule(rule)
	if err != nil {
		adminError(w, http.StatusUnprocessableEntity, "validation", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": id})
}

func adminError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
