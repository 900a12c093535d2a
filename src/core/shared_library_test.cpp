#include "core/shared_library.hpp"

#include <gtest/gtest.h>

namespace agentwire::core {
namespace {

using ZlibVersion = const char*();

TEST(SharedLibraryTest, ResolvesTheFunctionsOfALibraryOpenedAtNeed) {
  SharedLibrary so("libz.so.1");
  ZlibVersion* version = nullptr;
  so.resolve("zlibVersion", version);
  ASSERT_TRUE(so.ok()) << so.error();
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version()[0], '1');  // "1.2.13" on Debian 12
}

TEST(SharedLibraryTest, AMissingLibrarySaysWhichAndResolvesNothing) {
  SharedLibrary so("libagentwire-no-such-library.so.9");
  ZlibVersion* version = nullptr;
  so.resolve("zlibVersion", version);
  EXPECT_FALSE(so.ok());
  EXPECT_NE(so.error().find("libagentwire-no-such-library.so.9"), std::string::npos) << so.error();
  EXPECT_EQ(version, nullptr);
}

TEST(SharedLibraryTest, AMissingSymbolSaysWhich) {
  SharedLibrary so("libz.so.1");
  ZlibVersion* version = nullptr;
  ZlibVersion* missing = nullptr;
  so.resolve("zlibVersion", version);
  so.resolve("agentwire_no_such_function", missing);
  EXPECT_FALSE(so.ok());
  EXPECT_NE(so.error().find("agentwire_no_such_function"), std::string::npos) << so.error();
  EXPECT_NE(version, nullptr);
  EXPECT_EQ(missing, nullptr);
}

}  // namespace
}  // namespace agentwire::core
