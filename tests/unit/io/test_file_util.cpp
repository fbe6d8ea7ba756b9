// Atomic file and directory publication, memory maps, and file reading errors.
#include "io/file_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "io_test_util.h"

namespace nemotron::io {
namespace {

using testing::expect_error;
using testing::list_dir;
using testing::read_bytes;
using testing::ScratchDir;

mode_t current_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

TEST(AtomicFile, WritesReplacesAndUsesNormalPermissions) {
  ScratchDir dir;
  std::string path = dir.file("a.txt");
  write_file_atomic(path, "first");
  EXPECT_EQ(read_bytes(path), "first");
  write_file_atomic(path, "second, longer");
  EXPECT_EQ(read_bytes(path), "second, longer");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"a.txt"});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~current_umask());  // not mkstemp's 0600
}

TEST(AtomicFile, AbandonedWriteLeavesTargetUntouched) {
  ScratchDir dir;
  std::string path = dir.file("a.txt");
  write_file_atomic(path, "keep");
  {
    AtomicFile f(path);
    f.append("partial");
    EXPECT_TRUE(path_exists(f.temp_path()));
    EXPECT_EQ(f.temp_path().rfind(path + ".tmp-", 0), 0u);  // same directory, so rename is atomic
  }
  EXPECT_EQ(read_bytes(path), "keep");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, WriteAtAndAppend) {
  ScratchDir dir;
  std::string path = dir.file("b.bin");
  AtomicFile f(path);
  f.append("0123");
  f.write_at(10, "xy", 2);  // leaves a hole of zeros
  f.append("45");           // append position is unaffected by write_at
  f.commit();
  EXPECT_EQ(read_bytes(path), std::string("012345\0\0\0\0xy", 12));
  expect_error([&] { f.append("z"); }, {"after commit"});
}

TEST(AtomicFile, MissingDirectoryIsAClearError) {
  ScratchDir dir;
  expect_error([&] { write_file_atomic(dir.file("nope/a.txt"), "x"); }, {"nope/a.txt", "does the directory exist"});
}

TEST(AtomicDirectory, PublishesNewDirectoryAndCreatesParents) {
  ScratchDir dir;
  std::string target = dir.file("out/sub/ckpt");
  {
    AtomicDirectory d(target, false);
    EXPECT_EQ(d.staging_path().rfind(target + ".tmp-", 0), 0u);
    write_file_atomic(d.staging_file("x.txt"), "hello");
    EXPECT_FALSE(path_exists(target));  // invisible until commit
    d.commit();
  }
  EXPECT_EQ(read_bytes(target + "/x.txt"), "hello");
  EXPECT_EQ(list_dir(dir.file("out/sub")), std::vector<std::string>{"ckpt"});
}

TEST(AtomicDirectory, AbandonedStagingIsRemoved) {
  ScratchDir dir;
  std::string target = dir.file("ckpt");
  {
    AtomicDirectory d(target, false);
    std::filesystem::create_directories(d.staging_file("nested/deeper"));
    write_file_atomic(d.staging_file("nested/deeper/f"), "x");
  }
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

TEST(AtomicDirectory, ExistingDirectories) {
  ScratchDir dir;
  std::string target = dir.file("ckpt");
  // An existing empty directory is fine (people create the output directory first).
  std::filesystem::create_directory(target);
  {
    AtomicDirectory d(target, false);
    write_file_atomic(d.staging_file("v1"), "1");
    d.commit();
  }
  EXPECT_EQ(list_dir(target), std::vector<std::string>{"v1"});
  // Non-empty without replace: refused before anything is written.
  expect_error([&] { AtomicDirectory d(target, false); }, {target, "already exists and is not empty"});
  // With replace: the old contents vanish, nothing is left beside the target.
  {
    AtomicDirectory d(target, true);
    write_file_atomic(d.staging_file("v2"), "2");
    EXPECT_EQ(list_dir(target), std::vector<std::string>{"v1"});
    d.commit();
  }
  EXPECT_EQ(list_dir(target), std::vector<std::string>{"v2"});
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"ckpt"});
  // A file in the way.
  testing::write_bytes(dir.file("file"), "x");
  expect_error([&] { AtomicDirectory d(dir.file("file"), true); }, {"exists and is not a directory"});
}

TEST(AtomicDirectory, TargetFilledByOthersMeanwhileIsNotReplaced) {
  ScratchDir dir;
  std::string target = dir.file("ckpt");
  AtomicDirectory d(target, false);
  write_file_atomic(d.staging_file("ours"), "1");
  std::filesystem::create_directory(target);
  write_file_atomic(target + "/theirs", "2");
  expect_error([&] { d.commit(); }, {target, "created by someone else"});
  EXPECT_EQ(list_dir(target), std::vector<std::string>{"theirs"});
}

TEST(MappedFile, MapsContentsAndHandlesEdgeCases) {
  ScratchDir dir;
  testing::write_bytes(dir.file("f"), "abcdef");
  auto m = MappedFile::open(dir.file("f"));
  ASSERT_EQ(m->size(), 6u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), 6), "abcdef");
  m->data()[0] = 'X';  // copy-on-write: the file keeps its contents
  EXPECT_EQ(read_bytes(dir.file("f")), "abcdef");

  testing::write_bytes(dir.file("empty"), "");
  auto e = MappedFile::open(dir.file("empty"));
  EXPECT_EQ(e->size(), 0u);
  EXPECT_EQ(e->data(), nullptr);

  expect_error([&] { MappedFile::open(dir.file("missing")); }, {"cannot open", "missing"});
  expect_error([&] { MappedFile::open(dir.path()); }, {"not a regular file"});
}

TEST(FileHelpers, ReadAndPaths) {
  ScratchDir dir;
  testing::write_bytes(dir.file("f"), "0123456789");
  EXPECT_EQ(read_file(dir.file("f")), "0123456789");
  EXPECT_EQ(read_file_range(dir.file("f"), 8, 10), "89");  // short at the end
  EXPECT_EQ(file_size(dir.file("f")), 10u);
  EXPECT_TRUE(path_exists(dir.file("f")));
  EXPECT_FALSE(is_directory(dir.file("f")));
  EXPECT_TRUE(is_directory(dir.path()));
  expect_error([&] { read_file(dir.file("missing")); }, {"missing"});
  expect_error([&] { read_file(dir.path()); }, {"is a directory"});
  EXPECT_EQ(join_path("a", "b"), "a/b");
  EXPECT_EQ(join_path("a/", "b"), "a/b");
  EXPECT_EQ(join_path("", "b"), "b");
}

}  // namespace
}  // namespace nemotron::io
