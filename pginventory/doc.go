// Package pginventory reads the ad platform's identifier inventory from a
// PostgreSQL database, as an inventory.Source, so that the rows go through
// the same purpose policy as an inventory file (see package
// github.com/psimatch/psimatch/psi/inventory).
//
// Call Open with a connection string (a postgres:// URL or a libpq
// "host=... dbname=..." string; IsConnString tells one from a file path) and
// a query; Opener makes the inventory.Opener that inventory.Run calls. Run
// reads the inventory two or three times: the Source is a Rewinder, and every
// pass runs the query again in one REPEATABLE READ READ ONLY transaction, so
// the passes read one snapshot. Each read of the inventory (a start, a
// reload) opens a new Source, and so sees every opt-out committed before it.
// The transaction lasts one read; on a busy database it holds back vacuum
// for that long.
//
// The query must return the columns user_id, kind, value, purposes and
// opted_out, by name, in any order (DefaultQuery reads the table
// psimatch_inventory). user_id, kind and value may be of any type: their
// text form is used. purposes is text (";"-separated) or an array of text or
// of an enum; opted_out is boolean or text, and NULL means false. Open checks
// the column types before the first row is read.
//
// What this package owns and guarantees:
//
//   - Rows are streamed from the server, one at a time; memory does not grow
//     with the table.
//   - The query runs in a read-only session (default_transaction_read_only):
//     a mistyped --inventory-query cannot change the database.
//   - A row that cannot be decoded is returned with inventory.Raw.Err set, so
//     the policy counts it invalid and the scan goes on. Its values never
//     appear in an error; rows are named by their 1-based position.
//   - A server error is shown only when its class names objects (a table, a
//     column): a data exception, such as a cast in a view failing on a phone
//     number, is reported by its SQLSTATE and the names of the objects
//     involved, never its message, which quotes the value.
//   - The password never appears in an error or in Name: a source is named
//     by a redacted URL such as postgres://psimatch@db.example:5432/ads.
//     Errors are *Error values that say which setting to check.
//
// It connects and queries; it never creates, changes or deletes anything.
package pginventory
