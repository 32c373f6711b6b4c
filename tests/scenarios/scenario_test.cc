// Runs every scenario file (tests/scenarios/*.txt, passed as arguments) on
// the reference model and on the BPF datapath; each must print exactly what
// the file expects. With --rewrite (bazel run), the files are rewritten
// from the datapath's output instead, for writing new cases.
#include "tests/scenarios/scenario.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"

namespace lockd::testing {
namespace {

std::vector<std::string>& Files() {
  static std::vector<std::string> files;
  return files;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class ScenarioTest : public ::testing::TestWithParam<std::string> {
 protected:
  void Check(Driver& driver) {
    const std::string text = Read(GetParam());
    ASSERT_FALSE(text.empty()) << "cannot read " << GetParam();
    absl::StatusOr<std::vector<ScenarioCase>> cases = ParseScenario(text);
    ASSERT_TRUE(cases.ok()) << GetParam() << ": " << cases.status();
    ASSERT_FALSE(cases->empty()) << GetParam() << " has no cases";
    absl::StatusOr<std::vector<std::string>> outputs =
        RunScenario(*cases, driver);
    ASSERT_TRUE(outputs.ok()) << GetParam() << ": " << outputs.status();
    for (size_t i = 0; i < cases->size(); ++i) {
      const ScenarioCase& c = (*cases)[i];
      EXPECT_EQ((*outputs)[i], c.expected)
          << GetParam() << ":" << c.line << " on " << driver.name() << ": "
          << c.command;
    }
  }
};

TEST_P(ScenarioTest, Model) {
  std::unique_ptr<Driver> driver = MakeModelDriver();
  Check(*driver);
}

TEST_P(ScenarioTest, Bpf) {
  std::unique_ptr<Driver> driver = MakeBpfDriver();
  Check(*driver);
}

std::string NameOf(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.rfind('/') + 1);
  name = name.substr(0, name.find('.'));
  for (char& c : name)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Corpus, ScenarioTest, ::testing::ValuesIn(Files()),
                         NameOf);

// --rewrite: the datapath's output replaces each file's expectations (in
// the source tree: run with `bazel run`).
int Rewrite() {
  const char* workspace = getenv("BUILD_WORKSPACE_DIRECTORY");
  for (const std::string& file : Files()) {
    const std::string text = Read(file);
    absl::StatusOr<std::vector<ScenarioCase>> cases = ParseScenario(text);
    if (!cases.ok()) {
      fprintf(stderr, "%s: %s\n", file.c_str(),
              std::string(cases.status().message()).c_str());
      return 1;
    }
    std::unique_ptr<Driver> driver = MakeBpfDriver();
    absl::StatusOr<std::vector<std::string>> out = RunScenario(*cases, *driver);
    if (!out.ok()) {
      fprintf(stderr, "%s: %s\n", file.c_str(),
              std::string(out.status().message()).c_str());
      return 1;
    }
    const std::string path =
        workspace ? absl::StrCat(workspace, "/", file) : file;
    std::ofstream(path) << RewriteScenario(text, *out);
    printf("rewrote %s\n", path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  // The files first: parameterized tests are registered by InitGoogleTest.
  bool rewrite = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rewrite")
      rewrite = true;
    else if (arg.rfind("--", 0) != 0)
      lockd::testing::Files().push_back(arg);
  }
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/true);
  if (rewrite) return lockd::testing::Rewrite();
  return RUN_ALL_TESTS();
}
