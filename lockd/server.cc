#include "lockd/server.h"

#include <net/if.h>

#include "absl/strings/str_cat.h"
#include "lockd/files.h"
#include "lockd/version.h"

namespace lockd {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server(options));
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

absl::Status Server::Init() {
  DatapathOptions dp = options_.datapath;
  dp.pin_dir = absl::StrCat(options_.pin_root, "/", options_.instance);
  if (absl::Status s = MakeDirs(dp.pin_dir); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Datapath>> datapath = Datapath::Load(dp);
  if (!datapath.ok()) return datapath.status();
  datapath_ = std::move(*datapath);
  segments_ = std::make_unique<Segments>(datapath_.get(), options_.segments);
  if (absl::Status s = segments_->Start(); !s.ok()) return s;
  table_ = std::make_unique<KernelTable>(datapath_.get());
  // Keys before any request can arrive.
  clients_ = std::make_unique<Clients>(table_.get(), datapath_->maps().clients,
                                       datapath_->maps().open_subnets,
                                       options_.key_file, &counters_);
  if (absl::Status s = clients_->Load(); !s.ok()) return s;
  if (absl::Status s = clients_->OpenSubnets(options_.open_subnets); !s.ok())
    return s;

  absl::StatusOr<std::unique_ptr<UdpSocket>> socket =
      UdpSocket::Open(dp.port, datapath_->epoch());
  if (!socket.ok()) return socket.status();
  socket_ = std::move(*socket);
  notifier_ = std::make_unique<Notifier>(socket_.get(), &calls_, &counters_);
  dispatcher_ =
      std::make_unique<Dispatcher>(table_.get(), notifier_.get(), &counters_);
  lock_service_ =
      std::make_unique<LockService>(dispatcher_.get(), &calls_, &counters_);
  expiry_ =
      std::make_unique<Expiry>(dispatcher_.get(), &counters_, options_.expiry);
  loop_ = std::make_unique<ControlLoop>(
      ControlLoop::Parts{datapath_.get(), segments_.get(), expiry_.get(),
                         notifier_.get(), dispatcher_.get(),
                         lock_service_.get(), &counters_},
      options_.loop);
  if (absl::Status s = loop_->Start(); !s.ok()) return s;
  udp_server_ =
      std::make_unique<UdpServer>(socket_.get(), dispatcher_.get(), &counters_);
  udp_server_->Start();

  ServerInfo info;
  info.udp_port = dp.port;
  info.restored = datapath_->reused_pins();
  info.epoch = datapath_->epoch();
  info.grace_ms = info.restored ? 0 : dp.grace_ms;
  info.version = kVersion;
  if (!options_.interface.empty()) {
    const int ifindex = if_nametoindex(options_.interface.c_str());
    if (ifindex == 0)
      return absl::NotFoundError(
          absl::StrCat("no interface \"", options_.interface, "\""));
    absl::StatusOr<XdpMode> mode = datapath_->AttachXdp(ifindex);
    if (!mode.ok()) return mode.status();
    if (absl::Status s = datapath_->AttachTc(ifindex); !s.ok()) return s;
    info.interface = options_.interface;
    info.xdp_mode = *mode == XdpMode::kNative ? "native" : "generic";
  }
  admin_ =
      std::make_unique<Admin>(Admin::Parts{dispatcher_.get(), datapath_.get(),
                                           segments_.get(), &counters_},
                              std::move(info));
  return absl::OkStatus();
}

Server::~Server() {
  // Requests stop first, then the programs, then what they used.
  if (datapath_) datapath_->Detach();
  if (udp_server_) udp_server_->Stop();
  if (loop_) loop_->Stop();
}

void Server::Unpin() {
  if (datapath_) datapath_->Unpin();
}

}  // namespace lockd
