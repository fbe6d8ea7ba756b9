#include <gtest/gtest.h>

#include "core/tensor.h"

using namespace nemotron;

TEST(Tensor, EmptyHasContiguousStrides) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::F32);
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.str(), "F32[2, 3, 4] cpu");
}

static Tensor iota(Shape s) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(v, s);
}

TEST(Tensor, SliceSelectTransposeShareStorage) {
  Tensor t = iota({3, 4});
  Tensor row = t.select(0, 1);
  EXPECT_EQ(row.to_f32_vector(), (std::vector<float>{4, 5, 6, 7}));
  Tensor col = t.select(1, 2);
  EXPECT_EQ(col.to_f32_vector(), (std::vector<float>{2, 6, 10}));
  EXPECT_FALSE(col.is_contiguous());
  Tensor strided = t.slice(1, 0, 4, 2);
  EXPECT_EQ(strided.to_f32_vector(), (std::vector<float>{0, 2, 4, 6, 8, 10}));
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{4, 3}));
  EXPECT_DOUBLE_EQ(tt.at({3, 2}), 11.0);
  // Writes through a view are visible in the base.
  Tensor v = t.slice(0, 2, 3);
  v.fill_(-1.0);
  EXPECT_DOUBLE_EQ(t.at({2, 0}), -1.0);
  EXPECT_DOUBLE_EQ(t.at({1, 3}), 7.0);
}

TEST(Tensor, PermuteAndContiguousCopy) {
  Tensor t = iota({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(c.at({i, j, k}), t.at({j, k, i}));
}

TEST(Tensor, ViewReshapeUnsqueeze) {
  Tensor t = iota({2, 6});
  EXPECT_EQ(t.view({3, -1}).shape(), (Shape{3, 4}));
  EXPECT_THROW(t.view({5, -1}), Error);
  EXPECT_THROW(t.transpose(0, 1).view({12}), Error);
  Tensor r = t.transpose(0, 1).reshape({12});
  EXPECT_EQ(r.to_f32_vector()[1], 6.0f);
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 2, 6}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{2, 6, 1}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), (Shape{2, 6}));
  EXPECT_THROW(t.squeeze(0), Error);
}

TEST(Tensor, BadIndicesAreErrors) {
  Tensor t = iota({2, 3});
  EXPECT_THROW(t.select(0, 2), Error);
  EXPECT_THROW(t.slice(1, 2, 4), Error);
  EXPECT_THROW(t.size(2), Error);
  EXPECT_THROW(t.permute({0, 0}), Error);
  EXPECT_THROW(Tensor::empty({-1}, DType::F32), Error);
  EXPECT_THROW(t.data<double>(), Error);
  EXPECT_THROW(Tensor().raw_data(), Error);
}

TEST(Tensor, DtypeConversionThroughCopy) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.0f, 2.5f, -3.0f, 1.0f / 3.0f}, {4});
  Tensor b = t.to(DType::BF16);
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.data<uint16_t>()[0], 0x3F80);  // 1.0 in bf16
  std::vector<float> back = b.to(DType::F32).to_f32_vector();
  EXPECT_EQ(back[1], 2.5f);
  EXPECT_EQ(back[3], 0.333984375f);  // 1/3 rounded to bf16 (8 significant bits)
  // copy_ into a strided destination converts too.
  Tensor dst = Tensor::zeros({4, 2}, DType::F64);
  dst.select(1, 1).copy_(t);
  EXPECT_EQ(dst.at({2, 1}), -3.0);
  EXPECT_EQ(dst.at({2, 0}), 0.0);
}

TEST(Tensor, FromBlobKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  Tensor t = Tensor::from_blob(owner->data(), {2, 2}, DType::F32, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(t.at({1, 1}), 4.0);
  t = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(Tensor, PackedFp4Layout) {
  Tensor t = Tensor::zeros({5}, DType::F4_E2M1);
  EXPECT_EQ(t.nbytes(), 3u);
  EXPECT_THROW(t.slice(0, 1, 3).raw_data(), Error);  // starts mid-byte
  EXPECT_NO_THROW(t.slice(0, 2, 4).raw_data());
}

TEST(Tensor, CudaWithoutBackendIsAnError) {
  if (device_backend_available(DeviceType::CUDA)) GTEST_SKIP() << "a CUDA backend is registered";
  EXPECT_THROW(Tensor::empty({2}, DType::F32, Device::cuda()), Error);
}
