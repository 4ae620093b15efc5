# .ci/postgres.sh: make a PostgreSQL server answer on 127.0.0.1 for the
# pginventory tests, and set PSIMATCH_TEST_POSTGRES to a connection string
# for it.
#
# Source it from .ci/run (it then exports PSIMATCH_TEST_POSTGRES and returns
# non-zero if it could not get a server):
#
#     source .ci/postgres.sh || exit 1
#
# or run it (bash .ci/postgres.sh): it then prints the connection string as
# the only line on standard output. What it does goes to standard error.
#
# When PSIMATCH_TEST_POSTGRES is already set it does nothing and keeps it.
# It is idempotent. When a server already answers on 127.0.0.1:$PORT it only
# makes sure the test role exists. Otherwise it installs Debian's postgresql
# package if the server binaries are missing, creates a cluster of its own in
# $PSIMATCH_PG_DATA (once) and starts it listening on 127.0.0.1 only, with
# password (scram-sha-256) authentication on TCP. The server is left running.
#
# Settings (environment):
#   PSIMATCH_PG_PORT  port to use (default 5432)
#   PSIMATCH_PG_DATA  data directory of the cluster it creates
#                     (default /var/lib/postgresql/psimatch-ci)
# The test role is psimatch, password psimatch, allowed to create databases:
# a throwaway role on a loopback-only server, for tests only.

_psimatch_pg_main() (
	set -euo pipefail

	port=${PSIMATCH_PG_PORT:-5432}
	data=${PSIMATCH_PG_DATA:-/var/lib/postgresql/psimatch-ci}
	role=psimatch
	password=psimatch
	url="postgres://$role:$password@127.0.0.1:$port/postgres"
	sockdir=/var/run/postgresql

	say() { echo "postgres.sh: $*" >&2; }
	die() {
		echo "postgres.sh: FAILED: $*" >&2
		exit 1
	}

	# as_postgres runs a command as the postgres OS user (or as ourselves
	# when we are not root and are that user already).
	as_postgres() {
		if [ "$(id -u)" = 0 ]; then
			runuser -u postgres -- "$@"
		else
			"$@"
		fi
	}

	# clear_stale makes way for a new server in data dir $1 when one that
	# does not answer was left behind (killed, possibly leaving children
	# that hold its shared memory): it stops the processes working in that
	# directory, and only those, and removes the stale lock file.
	clear_stale() {
		[ -e "$1/postmaster.pid" ] || return 0
		local pids=() p
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/cwd" 2>/dev/null)" = "$1" ] && pids+=("${p#/proc/}")
		done
		if [ "${#pids[@]}" -gt 0 ]; then
			say "stopping leftover server processes of $1 that do not answer: ${pids[*]}"
			kill -TERM "${pids[@]}" 2>/dev/null || true
			for _ in $(seq 20); do
				local alive=0
				for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
				[ "$alive" = 0 ] && break
				sleep 0.5
			done
			kill -KILL "${pids[@]}" 2>/dev/null || true
		fi
		say "removing the stale lock file $1/postmaster.pid"
		rm -f "$1/postmaster.pid"
	}

	# The test role can already log in: nothing to do.
	role_ok() {
		PGPASSWORD=$password PGCONNECT_TIMEOUT=5 psql -X -q -t -A \
			"postgres://$role@127.0.0.1:$port/postgres" \
			-c "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user" 2>/dev/null | grep -qx t
	}

	if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
		need_install=1
	else
		need_install=0
	fi

	if [ "$need_install" = 0 ] && pg_isready -q -h 127.0.0.1 -p "$port" -t 3; then
		say "a server already answers on 127.0.0.1:$port"
	else
		bindir=
		for d in /usr/lib/postgresql/*/bin; do
			[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && bindir=$d
		done
		if [ -z "$bindir" ] || [ "$need_install" = 1 ]; then
			[ "$(id -u)" = 0 ] || die "the PostgreSQL server is not installed and we are not root to apt-get install it"
			say "installing PostgreSQL: apt-get update && apt-get install -y postgresql"
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -q >&2 || die "apt-get update failed"
			apt-get install -y -q postgresql >&2 || die "apt-get install postgresql failed"
			for d in /usr/lib/postgresql/*/bin; do
				[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && bindir=$d
			done
			[ -n "$bindir" ] || die "postgresql is installed but no /usr/lib/postgresql/*/bin/postgres was found"
		fi
		say "server binaries: $bindir"

		# The package's own cluster may have been started by the install.
		if pg_isready -q -h 127.0.0.1 -p "$port" -t 3; then
			say "a server now answers on 127.0.0.1:$port"
		else
			id postgres >/dev/null 2>&1 || die "there is no postgres OS user to run the server as"
			mkdir -p "$sockdir"
			chown postgres:postgres "$sockdir" 2>/dev/null || true
			if [ ! -s "$data/PG_VERSION" ]; then
				say "creating a cluster in $data"
				mkdir -p "$data"
				chown postgres:postgres "$data" 2>/dev/null || true
				chmod 700 "$data"
				as_postgres "$bindir/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
					--auth-local=peer --auth-host=scram-sha-256 >&2 ||
					die "initdb -D $data failed"
			fi
			clear_stale "$data"
			say "starting the server: 127.0.0.1:$port, data $data, log $data/server.log"
			as_postgres "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
				-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$sockdir" \
				start >&2 || {
				tail -n 20 "$data/server.log" >&2 || true
				die "pg_ctl start failed (log above: $data/server.log)"
			}
			pg_isready -h 127.0.0.1 -p "$port" -t 30 >&2 ||
				die "the server started but does not answer on 127.0.0.1:$port"
		fi
	fi

	if role_ok; then
		say "role $role can log in and create databases"
	else
		say "creating or updating role $role (LOGIN CREATEDB, password $password)"
		as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$port" -d postgres >&2 <<-SQL ||
			DO \$\$
			BEGIN
				IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
					CREATE ROLE $role LOGIN;
				END IF;
			END
			\$\$;
			ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password';
		SQL
			die "could not create role $role through the socket in $sockdir as the postgres user"
		role_ok || die "role $role still cannot log in on 127.0.0.1:$port with its password (check pg_hba.conf)"
	fi

	say "PSIMATCH_TEST_POSTGRES=$url"
	echo "$url"
)

if [ -n "${PSIMATCH_TEST_POSTGRES:-}" ]; then
	# Already pointed at a server (a developer's own): leave it.
	echo "postgres.sh: PSIMATCH_TEST_POSTGRES is already set; using that server" >&2
	export PSIMATCH_TEST_POSTGRES
	if [ "${BASH_SOURCE[0]}" = "$0" ]; then
		echo "$PSIMATCH_TEST_POSTGRES"
	fi
	unset -f _psimatch_pg_main
	true
elif _psimatch_pg_url=$(_psimatch_pg_main); then
	export PSIMATCH_TEST_POSTGRES="$_psimatch_pg_url"
	unset _psimatch_pg_url
	# Run rather than sourced: print the connection string.
	if [ "${BASH_SOURCE[0]}" = "$0" ]; then
		echo "$PSIMATCH_TEST_POSTGRES"
	fi
	unset -f _psimatch_pg_main
	true
else
	unset _psimatch_pg_url
	unset -f _psimatch_pg_main
	echo "postgres.sh: no PostgreSQL server for the tests" >&2
	return 1 2>/dev/null || exit 1
fi
