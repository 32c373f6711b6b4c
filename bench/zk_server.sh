#!/usr/bin/env bash
# zk_server.sh: Debian's ZooKeeper server (package zookeeper), standalone,
# in the foreground, for scripts/bench.sh and //bench:zk_driver_test.
#
#   bench/zk_server.sh DATA_DIR ADDRESS PORT
#
# Writes DATA_DIR/zoo.cfg and replaces itself with the JVM, so the caller's
# pid is the server's. Snapshots and transaction log in DATA_DIR (fsynced
# as ZooKeeper always does; scripts/bench.sh puts it on tmpfs, as etcd's);
# clients on ADDRESS:PORT only; no admin HTTP server; of the four-letter
# words only `srvr` (readiness and version); no limit on connections per
# client address; heap at most 1 GiB (zkServer.sh's default); log on stderr.
# Run it inside the network namespace it is to serve.
set -euo pipefail

if (($# != 3)); then
  echo "usage: bench/zk_server.sh DATA_DIR ADDRESS PORT" >&2
  exit 2
fi
readonly data_dir="$1" address="$2" port="$3"

mkdir -p "$data_dir"
cat >"$data_dir/zoo.cfg" <<CONFIG
tickTime=2000
dataDir=$data_dir
clientPortAddress=$address
clientPort=$port
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
CONFIG

exec java -Xmx1g -Dzookeeper.jmx.log4j.disable=true \
  -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
  org.apache.zookeeper.server.ZooKeeperServerMain "$data_dir/zoo.cfg"
