// Proves the gRPC stack works end to end on this platform: the generated
// lockd.v1 code, Debian's gRPC libraries and a real TCP connection over
// loopback, with no mocks in between.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd {
namespace {

// Any value will do: it only has to come back through the reply.
constexpr uint32_t kReportedUdpPort = 20231;

// Implements Health only, so every other AdminService RPC keeps the
// generated UNIMPLEMENTED answer.
class HealthOnlyAdminService final : public v1::AdminService::Service {
 public:
  grpc::Status Health(grpc::ServerContext* /*context*/,
                      const v1::HealthRequest* /*request*/,
                      v1::HealthResponse* response) override {
    response->set_serving(true);
    response->set_version("smoke-test");
    response->set_udp_port(kReportedUdpPort);
    return grpc::Status::OK;
  }
};

class GrpcSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    // Port 0: the kernel picks a free port, so parallel tests never clash.
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &selected_port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr) << "server failed to start";
    ASSERT_GT(selected_port_, 0) << "no port was bound";

    grpc::ChannelArguments arguments;
    // A proxy from the environment must not intercept a loopback call.
    arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    stub_ = v1::AdminService::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(selected_port_),
        grpc::InsecureChannelCredentials(), arguments));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // A deadline only so that a broken stack fails the test instead of
  // hanging it; no assertion depends on how long a call takes.
  static void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
  }

  HealthOnlyAdminService service_;
  int selected_port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

TEST_F(GrpcSmokeTest, HealthAnswersOverLoopbackTcp) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::HealthResponse response;
  const grpc::Status status =
      stub_->Health(&context, v1::HealthRequest(), &response);

  ASSERT_TRUE(status.ok()) << status.error_code() << ": "
                           << status.error_message();
  EXPECT_TRUE(response.serving());
  EXPECT_EQ(response.version(), "smoke-test");
  EXPECT_EQ(response.udp_port(), kReportedUdpPort);
  // The client's peer is the server's TCP address: the call really went
  // over loopback TCP, not an in-process channel.
  EXPECT_EQ(context.peer(), "ipv4:127.0.0.1:" + std::to_string(selected_port_));
}

TEST_F(GrpcSmokeTest, UnimplementedRpcReturnsUnimplemented) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetStatsResponse response;
  const grpc::Status status =
      stub_->GetStats(&context, v1::GetStatsRequest(), &response);

  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << status.error_message();
}

}  // namespace
}  // namespace lockd
