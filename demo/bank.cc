// A bank on lockd, the example app of the README's main command: accounts
// are locks, balances live in files (demo/account_store.h) that nothing but
// lockd protects. Worker threads run, for a bounded time and number of
// operations:
//   transfers  exclusive locks on two accounts; read both, move an amount,
//              write both back with their fences (the store refuses stale
//              ones)
//   audits     shared locks on every account; the sum must be the total
//              the bank started with
// Both are strict two-phase-locking transactions under WAIT_DIE, restarted
// by RunTransaction when they die. Taking the locks in one global order
// with WAIT would avoid deadlock as well, but only for transactions that
// know all their locks before they start; with WAIT_DIE each transaction
// locks in the order its logic needs (the account to debit first, as here)
// across any number of servers, and an older transaction is never aborted
// by a younger one, so none starves. What it costs (attempts that died) is
// in the report.
//
// At the end it checks that the total is unchanged and prints throughput,
// aborts and retries, and the client's per-server UDP/gRPC counters. Exit
// status 0 only if every audit and the final total were right and no
// operation failed.
#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "abi/codec.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/transaction.h"
#include "demo/account_store.h"
#include "lockctl/server_list.h"

ABSL_FLAG(std::string, lock_servers, "", lockd::lockctl::kLockServersHelp);
ABSL_FLAG(std::string, server_list_file, "",
          lockd::lockctl::kServerListFileHelp);
ABSL_FLAG(std::string, store, "",
          "directory of the account files (created; existing accounts are "
          "reset)");
ABSL_FLAG(uint32_t, client_id, LOCKD_CLIENT_NONE,
          "client id to sign requests as (docs/security.md); 0: unsigned "
          "(served only from a lock server's lab subnets)");
ABSL_FLAG(std::string, key_file, "", "key file holding --client_id's key");
ABSL_FLAG(int, accounts, 16, "number of accounts");
ABSL_FLAG(int64_t, initial_balance, 1000, "balance of every account at start");
ABSL_FLAG(int64_t, max_amount, 100, "largest amount of one transfer");
ABSL_FLAG(int, threads, 4, "worker threads");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5),
          "how long the workers run");
ABSL_FLAG(int, max_ops, 100000, "operations per worker at most");
ABSL_FLAG(int, audit_percent, 10, "share of operations that are audits");

namespace lockd::demo {
namespace {

using client::Mode;

std::string AccountLock(int account) {
  return absl::StrFormat("bank/account-%03d", account);
}

// What one worker did; summed over workers at the end.
struct Tally {
  uint64_t transfers = 0;  // committed
  uint64_t audits = 0;     // committed
  uint64_t attempts = 0;   // bodies run, first runs and restarts
  uint64_t aborts = 0;     // attempts that died (WAIT_DIE)
  uint64_t gave_up = 0;    // transactions aborted in every attempt
  uint64_t errors = 0;
  std::string first_error;

  void Add(const Tally& other) {
    transfers += other.transfers;
    audits += other.audits;
    attempts += other.attempts;
    aborts += other.aborts;
    gave_up += other.gave_up;
    errors += other.errors;
    if (first_error.empty()) first_error = other.first_error;
  }
};

absl::StatusOr<int64_t> SumOfBalances(const AccountStore& store, int accounts) {
  int64_t sum = 0;
  for (int account = 0; account < accounts; ++account) {
    absl::StatusOr<AccountRecord> record = store.Read(account);
    if (!record.ok()) return record.status();
    sum += record->balance;
  }
  return sum;
}

class Bank {
 public:
  Bank(client::Client& client, const AccountStore& store, int accounts,
       int64_t total)
      : client_(client), store_(store), accounts_(accounts), total_(total) {}

  // Runs operations until `deadline` or `max_ops`; a worker stops at its
  // first error (the report shows it).
  Tally Work(absl::Time deadline, int max_ops, int audit_percent,
             int64_t max_amount) {
    Tally tally;
    std::mt19937_64 random(std::random_device{}());
    std::uniform_int_distribution<int> percent(0, 99);
    std::uniform_int_distribution<int> account(0, accounts_ - 1);
    std::uniform_int_distribution<int64_t> amount(1, max_amount);
    for (int op = 0; op < max_ops && absl::Now() < deadline; ++op) {
      const bool audit = percent(random) < audit_percent;
      const int from = account(random);
      int to = account(random);
      if (to == from) to = (to + 1) % accounts_;
      const int64_t wanted = amount(random);
      const absl::Status done = client::RunTransaction(
          client_, Options(), [&](client::Transaction& txn) {
            ++tally.attempts;
            const absl::Status body =
                audit ? Audit(txn) : Transfer(txn, from, to, wanted);
            if (absl::IsAborted(body)) ++tally.aborts;
            return body;
          });
      if (done.ok()) {
        ++(audit ? tally.audits : tally.transfers);
      } else if (absl::IsAborted(done)) {
        ++tally.gave_up;
      } else {
        ++tally.errors;
        tally.first_error = done.ToString();
        break;
      }
    }
    return tally;
  }

 private:
  static client::TransactionOptions Options() {
    client::TransactionOptions options;
    options.policy = client::Policy::kWaitDie;
    return options;
  }

  absl::Status Transfer(client::Transaction& txn, int from, int to,
                        int64_t wanted) {
    absl::StatusOr<uint64_t> from_fence =
        txn.Lock(AccountLock(from), Mode::kExclusive);
    if (!from_fence.ok()) return from_fence.status();
    absl::StatusOr<AccountRecord> from_record = store_.Read(from);
    if (!from_record.ok()) return from_record.status();
    absl::StatusOr<uint64_t> to_fence =
        txn.Lock(AccountLock(to), Mode::kExclusive);
    if (!to_fence.ok()) return to_fence.status();
    absl::StatusOr<AccountRecord> to_record = store_.Read(to);
    if (!to_record.ok()) return to_record.status();
    // No overdrafts: move what there is, up to the amount.
    const int64_t amount = std::min(wanted, from_record->balance);
    if (absl::Status debited =
            store_.Write(from, from_record->balance - amount, *from_fence);
        !debited.ok())
      return debited;
    return store_.Write(to, to_record->balance + amount, *to_fence);
  }

  absl::Status Audit(client::Transaction& txn) {
    for (int account = 0; account < accounts_; ++account) {
      absl::StatusOr<uint64_t> fence =
          txn.Lock(AccountLock(account), Mode::kShared);
      if (!fence.ok()) return fence.status();
    }
    absl::StatusOr<int64_t> sum = SumOfBalances(store_, accounts_);
    if (!sum.ok()) return sum.status();
    if (*sum != total_)
      return absl::InternalError(
          absl::StrCat("an audit holding every account saw a total of ", *sum,
                       ", not ", total_));
    return absl::OkStatus();
  }

  client::Client& client_;
  const AccountStore& store_;
  const int accounts_;
  const int64_t total_;
};

void PrintClientStats(const client::ClientStats& stats) {
  printf("  %-8s %9s %9s %9s %9s %9s %9s %5s %s\n", "SERVER", "UDP_REQ",
         "RETRANS", "REPLIES", "FALLBACK", "GRPC_REQ", "RENEWALS", "LOST",
         "UDP_PATH");
  std::vector<client::ServerStats> rows = stats.servers;
  rows.push_back(stats.total);
  for (const client::ServerStats& s : rows) {
    printf("  %-8s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
           " %9" PRIu64 " %9" PRIu64 " %5" PRIu64 " %s\n",
           s.name.c_str(), s.udp_requests, s.udp_retransmissions, s.udp_replies,
           s.udp_fallbacks, s.grpc_requests, s.renewals, s.leases_lost,
           &s == &rows.back() ? "" : (s.udp_path_up ? "up" : "down"));
  }
  if (stats.server_list_reloads > 0 || stats.server_list_errors > 0) {
    printf("  server list file: %" PRIu64 " change(s) taken, %" PRIu64
           " refused%s%s\n",
           stats.server_list_reloads, stats.server_list_errors,
           stats.server_list_error.empty() ? "" : "; the last: ",
           stats.server_list_error.c_str());
  }
}

int Run() {
  const std::string directory = absl::GetFlag(FLAGS_store);
  const int accounts = absl::GetFlag(FLAGS_accounts);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int64_t initial = absl::GetFlag(FLAGS_initial_balance);
  if (directory.empty() || accounts < 2 || threads < 1 || initial < 0 ||
      absl::GetFlag(FLAGS_max_amount) < 1) {
    fprintf(stderr,
            "bank: needs --store, --accounts >= 2, --threads >= 1, "
            "--initial_balance >= 0 and --max_amount >= 1\n");
    return 2;
  }
  client::ClientOptions options;
  if (absl::Status servers = lockctl::UseServerFlags(
          absl::GetFlag(FLAGS_lock_servers),
          absl::GetFlag(FLAGS_server_list_file), options);
      !servers.ok()) {
    fprintf(stderr, "bank: %s\n", servers.ToString().c_str());
    return 2;
  }
  if (absl::Status keyed = options.UseKey(absl::GetFlag(FLAGS_client_id),
                                          absl::GetFlag(FLAGS_key_file));
      !keyed.ok()) {
    fprintf(stderr, "bank: %s\n", keyed.ToString().c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<client::Client>> client =
      client::Client::Create(options);
  if (!client.ok()) {
    fprintf(stderr, "bank: %s\n", client.status().ToString().c_str());
    return 2;
  }
  const AccountStore store(directory);
  if (absl::Status created = store.Create(accounts, initial); !created.ok()) {
    fprintf(stderr, "bank: %s\n", created.ToString().c_str());
    return 2;
  }

  std::map<std::string, int> placement;
  for (int account = 0; account < accounts; ++account)
    ++placement[(*client)->ServerNameFor(LockIdForName(AccountLock(account)))];
  std::string where;
  for (const auto& [server, count] : placement)
    absl::StrAppend(&where, where.empty() ? "" : ", ", server, ": ", count);
  const int64_t total = initial * accounts;
  printf("bank: %d accounts of %" PRId64
         " in %s (locks %s), %d threads, %s, "
         "WAIT_DIE\n",
         accounts, initial, directory.c_str(), where.c_str(), threads,
         absl::FormatDuration(absl::GetFlag(FLAGS_duration)).c_str());

  Bank bank(**client, store, accounts, total);
  absl::Mutex mu;
  Tally tally;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::GetFlag(FLAGS_duration);
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      const Tally mine = bank.Work(deadline, absl::GetFlag(FLAGS_max_ops),
                                   absl::GetFlag(FLAGS_audit_percent),
                                   absl::GetFlag(FLAGS_max_amount));
      absl::MutexLock lock(&mu);
      tally.Add(mine);
    });
  }
  for (std::thread& worker : workers) worker.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  // The workers are done: nobody else touches the store now.
  absl::StatusOr<int64_t> final_total = SumOfBalances(store, accounts);
  const bool total_kept = final_total.ok() && *final_total == total;
  const uint64_t transactions =
      tally.transfers + tally.audits + tally.gave_up + tally.errors;
  printf("  transfers  %8" PRIu64 " committed  %9.1f/s\n", tally.transfers,
         tally.transfers / seconds);
  printf("  audits     %8" PRIu64
         " committed  %9.1f/s  (each saw the total "
         "%" PRId64 ")\n",
         tally.audits, tally.audits / seconds, total);
  printf("  aborts     %8" PRIu64 " attempts died (WAIT_DIE), %" PRIu64
         " retries, %" PRIu64 " transactions gave up\n",
         tally.aborts, tally.attempts - transactions, tally.gave_up);
  if (final_total.ok()) {
    printf("  total      %8" PRId64 " %s %" PRId64 " at the start: %s\n",
           *final_total, total_kept ? "==" : "!=", total,
           total_kept ? "OK" : "MONEY WAS CREATED OR LOST");
  } else {
    printf("  total      unknown: %s\n",
           final_total.status().ToString().c_str());
  }
  printf("client (per server):\n");
  PrintClientStats((*client)->Stats());
  if (tally.errors > 0)
    fprintf(stderr, "bank: %" PRIu64 " operation(s) failed; the first: %s\n",
            tally.errors, tally.first_error.c_str());
  return total_kept && tally.errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace lockd::demo

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "bank --store=DIR [--lock_servers=LIST | --server_list_file=FILE] "
      "[--threads=4] [--duration=5s] "
      "...: transfers and audits over account locks; checks the total");
  absl::ParseCommandLine(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  return lockd::demo::Run();
}
