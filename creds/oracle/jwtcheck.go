// jwtcheck: buswarden's conformance oracle. It runs the official NATS Go
// libraries (nats-io/jwt v2, nats-io/nkeys, as packaged by Debian) over
// what buswarden produces, and produces JWTs with them for the reverse
// test. Built by ci/deps.sh into target/oracle/jwtcheck; the creds crate's
// tests find it through BUSWARDEN_JWT_ORACLE.
//
// Every command prints one JSON object on stdout. Exit status: 0 accepted,
// 1 rejected (the object's "error" says why), 2 usage or I/O error.
//
//	jwtcheck decode TOKEN                  decode, verify, validate (time included)
//	jwtcheck user USER_JWT ACCOUNT_JWT     also: the account issued the user, not revoked
//	jwtcheck account ACCOUNT_JWT OPERATOR_JWT  also: the operator issued the account
//	jwtcheck creds FILE                    parse a .creds file as nats.go does
//	jwtcheck format-creds JWT SEED         print FormatUserConfig's bytes (raw, not JSON)
//	jwtcheck encode KIND SEED CLAIMS_JSON  encode claims (KIND operator|account|user) with SEED
//	jwtcheck generate                      a full operator/account/users set made by the Go library
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/ioutil"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

type result struct {
	OK     bool        `json:"ok"`
	Type   string      `json:"type,omitempty"`
	Error  string      `json:"error,omitempty"`
	Claims interface{} `json:"claims,omitempty"`
	Extra  interface{} `json:"extra,omitempty"`
}

func emit(r result) {
	out, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(string(out))
	if r.OK {
		os.Exit(0)
	}
	os.Exit(1)
}

func reject(err error) {
	emit(result{OK: false, Error: err.Error()})
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: jwtcheck decode|user|account|creds|format-creds|encode|generate ...")
	os.Exit(2)
}

// decodeValid decodes (verifying the signature and issuer kind) and
// validates, time checks included, as nats-server does.
func decodeValid(token string) (jwt.Claims, error) {
	c, err := jwt.Decode(token)
	if err != nil {
		return nil, err
	}
	vr := jwt.CreateValidationResults()
	c.Validate(vr)
	if vr.IsBlocking(true) {
		errs := vr.Errors()
		return nil, fmt.Errorf("validation: %v", errs)
	}
	return c, nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "decode":
		if len(args) != 1 {
			usage()
		}
		c, err := decodeValid(args[0])
		if err != nil {
			reject(err)
		}
		emit(result{OK: true, Type: string(c.ClaimType()), Claims: c})
	case "user":
		if len(args) != 2 {
			usage()
		}
		checkUser(args[0], args[1])
	case "account":
		if len(args) != 2 {
			usage()
		}
		checkAccount(args[0], args[1])
	case "creds":
		if len(args) != 1 {
			usage()
		}
		checkCreds(args[0])
	case "format-creds":
		if len(args) != 2 {
			usage()
		}
		b, err := jwt.FormatUserConfig(args[0], []byte(args[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "encode":
		if len(args) != 3 {
			usage()
		}
		encode(args[0], args[1], args[2])
	case "generate":
		generate()
	default:
		usage()
	}
}

func checkUser(userJWT, accountJWT string) {
	uc, err := decodeValid(userJWT)
	if err != nil {
		reject(fmt.Errorf("user: %v", err))
	}
	user, ok := uc.(*jwt.UserClaims)
	if !ok {
		reject(errors.New("user: not user claims"))
	}
	ac, err := decodeValid(accountJWT)
	if err != nil {
		reject(fmt.Errorf("account: %v", err))
	}
	acc, ok := ac.(*jwt.AccountClaims)
	if !ok {
		reject(errors.New("account: not account claims"))
	}
	// What nats-server checks (server/auth.go, processClientOrLeafAuthentication).
	if !acc.DidSign(user) {
		reject(errors.New("account did not sign the user"))
	}
	if user.Issuer != acc.Subject {
		if user.IssuerAccount != acc.Subject {
			reject(fmt.Errorf("signed by signing key %s but issuer_account is %q", user.Issuer, user.IssuerAccount))
		}
		if scope, ok := acc.SigningKeys.GetScope(user.Issuer); ok && scope != nil {
			if err := scope.ValidateScopedSigner(user); err != nil {
				reject(err)
			}
		}
	} else if user.IssuerAccount != "" && user.IssuerAccount != acc.Subject {
		reject(errors.New("issuer_account names another account"))
	}
	if acc.IsClaimRevoked(user) {
		reject(errors.New("user is revoked"))
	}
	emit(result{OK: true, Type: "user", Claims: user})
}

func checkAccount(accountJWT, operatorJWT string) {
	ac, err := decodeValid(accountJWT)
	if err != nil {
		reject(fmt.Errorf("account: %v", err))
	}
	acc, ok := ac.(*jwt.AccountClaims)
	if !ok {
		reject(errors.New("account: not account claims"))
	}
	oc, err := decodeValid(operatorJWT)
	if err != nil {
		reject(fmt.Errorf("operator: %v", err))
	}
	op, ok := oc.(*jwt.OperatorClaims)
	if !ok {
		reject(errors.New("operator: not operator claims"))
	}
	if !op.DidSign(acc) {
		reject(errors.New("operator did not sign the account"))
	}
	emit(result{OK: true, Type: "account", Claims: acc})
}

func checkCreds(path string) {
	b, err := ioutil.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		reject(err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		reject(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		reject(err)
	}
	uc, err := decodeValid(token)
	if err != nil {
		reject(err)
	}
	if uc.Claims().Subject != pub {
		reject(fmt.Errorf("seed is for %s but the JWT is for %s", pub, uc.Claims().Subject))
	}
	emit(result{OK: true, Type: "user", Claims: uc, Extra: map[string]string{"jwt": token, "user": pub}})
}

func encode(kind, seed, claimsJSON string) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var c jwt.Claims
	switch kind {
	case "operator":
		c = &jwt.OperatorClaims{}
	case "account":
		a := &jwt.AccountClaims{}
		a.SigningKeys = make(jwt.SigningKeys)
		c = a
	case "user":
		c = &jwt.UserClaims{}
	default:
		usage()
	}
	if err := json.Unmarshal([]byte(claimsJSON), c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	token, err := c.Encode(kp)
	if err != nil {
		reject(err)
	}
	emit(result{OK: true, Type: kind, Extra: map[string]string{"jwt": token}})
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func pubOf(kp nkeys.KeyPair) string {
	p, err := kp.PublicKey()
	must(err)
	return p
}

func seedOf(kp nkeys.KeyPair) string {
	s, err := kp.Seed()
	must(err)
	return string(s)
}

// generate makes a whole trust chain with the Go library, exercising the
// fields buswarden reads: operator signing keys and system account, account
// limits, plain and scoped signing keys, revocations, default permissions,
// imports/exports, users with permissions, limits, issuer_account, tags.
func generate() {
	op, _ := nkeys.CreateOperator()
	opSK, _ := nkeys.CreateOperator()
	acc, _ := nkeys.CreateAccount()
	sys, _ := nkeys.CreateAccount()
	accSK, _ := nkeys.CreateAccount()
	scopedSK, _ := nkeys.CreateAccount()
	u1, _ := nkeys.CreateUser()
	u2, _ := nkeys.CreateUser()
	u3, _ := nkeys.CreateUser()
	revoked, _ := nkeys.CreateUser()

	oc := jwt.NewOperatorClaims(pubOf(op))
	oc.Name = "go-operator"
	oc.SigningKeys.Add(pubOf(opSK))
	oc.SystemAccount = pubOf(sys)
	oc.OperatorServiceURLs.Add("nats://127.0.0.1:4222")
	oc.Tags.Add("Env:Test")
	opJWT, err := oc.Encode(op)
	must(err)

	ac := jwt.NewAccountClaims(pubOf(acc))
	ac.Name = "go-account"
	ac.Expires = time.Now().Add(time.Hour).Unix()
	ac.SigningKeys.Add(pubOf(accSK))
	scope := jwt.NewUserScope()
	scope.Key = pubOf(scopedSK)
	scope.Role = "svc"
	scope.Template.Pub.Allow.Add("svc.>")
	scope.Template.Sub.Allow.Add("_INBOX.>")
	ac.SigningKeys.AddScopedSigner(scope)
	ac.RevokeAt(pubOf(revoked), time.Now().Add(time.Minute))
	ac.DefaultPermissions.Pub.Deny.Add(">")
	ac.DefaultPermissions.Sub.Deny.Add(">")
	ac.Exports.Add(&jwt.Export{Name: "svc", Subject: "svc.>", Type: jwt.Service})
	ac.Imports.Add(&jwt.Import{Name: "other", Subject: "other.>", Account: pubOf(sys), Type: jwt.Stream})
	ac.Description = "made by the Go library <&>"
	accJWT, err := ac.Encode(opSK)
	must(err)

	sc := jwt.NewAccountClaims(pubOf(sys))
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	must(err)

	// u1: signed by the account identity key, with every user field.
	uc1 := jwt.NewUserClaims(pubOf(u1))
	uc1.Name = "go-user-1"
	uc1.Expires = time.Now().Add(time.Hour).Unix()
	uc1.Pub.Allow.Add("microbus.safe.443.a.b.*.GET.>", "x.y")
	uc1.Pub.Deny.Add("x.z")
	uc1.Sub.Allow.Add("microbus.reply._.*.a.*", "q.* grp")
	uc1.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Second}
	uc1.Src.Add("127.0.0.0/8", "10.0.0.0/8")
	uc1.Times = append(uc1.Times, jwt.TimeRange{Start: "00:00:00", End: "23:59:59"})
	uc1.Locale = "UTC"
	uc1.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	uc1.Tags.Add("deploy:go")
	u1JWT, err := uc1.Encode(acc)
	must(err)

	// u2: signed by a plain signing key, with issuer_account.
	uc2 := jwt.NewUserClaims(pubOf(u2))
	uc2.Name = "go-user-2"
	uc2.IssuerAccount = pubOf(acc)
	uc2.Pub.Allow.Add("a.b")
	uc2.Sub.Allow.Add("c.d")
	u2JWT, err := uc2.Encode(accSK)
	must(err)

	// u3: signed by the scoped key, no permissions of its own.
	u3JWT, err := jwt.IssueUserJWT(scopedSK, pubOf(acc), pubOf(u3), "go-user-3", time.Hour, "scoped")
	must(err)

	// revoked: iat before the account's revocation of its key.
	ucr := jwt.NewUserClaims(pubOf(revoked))
	ucr.Pub.Allow.Add("a.b")
	ucr.Sub.Allow.Add("c.d")
	rJWT, err := ucr.Encode(acc)
	must(err)

	creds, err := jwt.FormatUserConfig(u1JWT, []byte(seedOf(u1)))
	must(err)

	emit(result{OK: true, Extra: map[string]interface{}{
		"operator":         opJWT,
		"account":          accJWT,
		"system_account":   sysJWT,
		"users":            []string{u1JWT, u2JWT, u3JWT},
		"revoked_user":     rJWT,
		"user_seed":        seedOf(u1),
		"creds":            string(creds),
		"account_seed":     seedOf(acc),
		"operator_seed":    seedOf(op),
		"signing_key":      pubOf(accSK),
		"scoped_key":       pubOf(scopedSK),
		"operator_sk":      pubOf(opSK),
		"operator_sk_seed": seedOf(opSK),
		"signing_key_seed": seedOf(accSK),
		"scoped_key_seed":  seedOf(scopedSK),
	}})
}
