// The pause RunTransaction (client/transaction.h) takes before retrying a
// transaction that was aborted. Internal to the client library.
#ifndef LOCKD_CLIENT_BACKOFF_H_
#define LOCKD_CLIENT_BACKOFF_H_

#include "absl/time/time.h"

namespace lockd::client {

// Before retry `retry` (1 for the first): 1, 2, 4 ms, then 8 ms for every
// later retry, each times 0.5 + `random` (`random` in [0, 1)), so that
// transactions that died together do not come back together. Long enough
// for the transaction that won to finish (a few round trips, a few
// retransmission timeouts under loss), short enough that a transaction
// dying again and again does not idle for long.
absl::Duration RetryPause(int retry, double random);

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_BACKOFF_H_
