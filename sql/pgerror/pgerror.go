// Package pgerror carries PostgreSQL SQLSTATE codes on errors. The SQL
// layer creates coded errors where it knows the class (an unknown table is
// 42P01); errors from below (a KvCluster write conflict, a cancelled
// context) are classified by Classify at the edge, in pgwire.
package pgerror

import (
	"context"
	"errors"
	"fmt"

	"github.com/shaledb/shaledb/kvcluster"
)

// SQLSTATE codes ShaleDB returns. Names follow PostgreSQL's errcodes.txt.
const (
	CodeSuccessfulCompletion            = "00000"
	CodeFeatureNotSupported             = "0A000"
	CodeInvalidCatalogName              = "3D000"
	CodeInvalidPassword                 = "28P01"
	CodeInvalidAuthorization            = "28000"
	CodeProtocolViolation               = "08P01"
	CodeTransactionResolutionUnknown    = "08007"
	CodeSyntaxError                     = "42601"
	CodeUndefinedTable                  = "42P01"
	CodeUndefinedSchema                 = "3F000"
	CodeAmbiguousFunction               = "42725"
	CodeUndefinedColumn                 = "42703"
	CodeUndefinedFunction               = "42883"
	CodeUndefinedObject                 = "42704"
	CodeDuplicateTable                  = "42P07"
	CodeDuplicateObject                 = "42710"
	CodeDuplicateColumn                 = "42701"
	CodeAmbiguousColumn                 = "42702"
	CodeDatatypeMismatch                = "42804"
	CodeInvalidColumnDefinition         = "42611"
	CodeInvalidTableDefinition          = "42P16"
	CodeGroupingError                   = "42803"
	CodeInvalidParameterValue           = "22023"
	CodeUniqueViolation                 = "23505"
	CodeNotNullViolation                = "23502"
	CodeDivisionByZero                  = "22012"
	CodeNumericValueOutOfRange          = "22003"
	CodeInvalidTextRepresentation       = "22P02"
	CodeStringDataRightTruncation       = "22001"
	CodeInvalidBinaryRepresentation     = "22P03"
	CodeDatetimeFieldOverflow           = "22008"
	CodeInvalidDatetimeFormat           = "22007"
	CodeInvalidSchemaName               = "3F000"
	CodeCannotCoerce                    = "42846"
	CodeSerializationFailure            = "40001"
	CodeDeadlockDetected                = "40P01"
	CodeInFailedSQLTransaction          = "25P02"
	CodeActiveSQLTransaction            = "25001"
	CodeNoActiveSQLTransaction          = "25P01"
	CodeQueryCanceled                   = "57014"
	CodeAdminShutdown                   = "57P01"
	CodeProgramLimitExceeded            = "54000"
	CodeInvalidSQLStatementName         = "26000"
	CodeInvalidCursorName               = "34000"
	CodeDuplicatePreparedStatement      = "42P05"
	CodeUndefinedParameter              = "42P02"
	CodeIndeterminateDatatype           = "42P18"
	CodeWrongObjectType                 = "42809"
	CodeInvalidColumnReference          = "42P10"
	CodeCardinalityViolation            = "21000"
	CodeInternalError                   = "XX000"
	CodeBadCopyFileFormat               = "22P04"
	CodeInsufficientPrivilege           = "42501"
	CodeTooManyConnections              = "53300"
	CodeDiskFull                        = "53100"
	CodeObjectInUse                     = "55006"
	CodeInvalidGrantOperation           = "0LP01"
	CodeNullValueNotAllowed             = "22004"
	CodeSubstringError                  = "22011"
	CodeDuplicateAlias                  = "42712"
	CodeOutOfMemory                     = "53200"
	CodeInvalidRecursion                = "42P19"
	CodeInvalidRegularExpression        = "2201B"
	CodeInvalidArgumentForPowerFunction = "2201F"
	CodeInvalidEscapeSequence           = "22025"
	CodeInvalidName                     = "42602"
	CodeReservedName                    = "42939"
	CodeDuplicateDatabase               = "42P04"
	CodeDependentObjectsStillExist      = "2BP01"
	CodeConfigurationLimitExceeded      = "53400"
	CodeObjectNotInPrerequisiteState    = "55000"
)

// Error is an error with a SQLSTATE, as an ErrorResponse carries it.
type Error struct {
	Code     string
	Severity string // ERROR unless set (FATAL for connection errors)
	Message  string
	Detail   string
	Hint     string
	// Position is the 1-based character position in the query text the
	// error refers to; 0 if none.
	Position int
	cause    error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.cause }

// New returns an error with code and a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap gives err a code, keeping it as the cause.
func Wrap(err error, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), cause: err}
}

// WithPosition sets the error's position and returns it.
func (e *Error) WithPosition(pos int) *Error { e.Position = pos; return e }

// WithDetail sets the error's detail and returns it.
func (e *Error) WithDetail(format string, args ...any) *Error {
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// Unsupported is the error for a feature ShaleDB does not have yet: always
// an honest 0A000, never a wrong answer.
func Unsupported(feature string) *Error {
	return New(CodeFeatureNotSupported, "%s is not supported", feature)
}

// Classify returns err as an *Error, giving a code to errors that have
// none: a KvCluster write conflict is 40001, a deadlock 40P01, a
// cancelled statement 57014,
// an oversized transaction 54000, a commit of
// unknown outcome 08007, anything else XX000.
func Classify(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	switch {
	case errors.Is(err, kvcluster.ErrDeadlock):
		return Wrap(err, CodeDeadlockDetected, "deadlock detected")
	case kvcluster.IsRetryable(err):
		return Wrap(err, CodeSerializationFailure, "could not serialize access due to concurrent update")
	case errors.Is(err, context.Canceled):
		return Wrap(err, CodeQueryCanceled, "canceling statement due to user request")
	case errors.Is(err, context.DeadlineExceeded):
		return Wrap(err, CodeQueryCanceled, "canceling statement due to statement timeout")
	case errors.Is(err, kvcluster.ErrCommitUnknown):
		return Wrap(err, CodeTransactionResolutionUnknown, "the outcome of COMMIT is unknown: %v", err)
	case errors.Is(err, kvcluster.ErrTxnTooLarge):
		return Wrap(err, CodeProgramLimitExceeded, "transaction too large: %v", err)
	}
	return Wrap(err, CodeInternalError, "internal error: %v", err)
}

// WithHint sets the error's hint and returns it.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}
