using System.Security.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Mta.Mail.Dkim;

/// <summary>
/// MimeKit's DKIM signing context backed by .NET's RSA (the platform's OpenSSL) instead of BouncyCastle's managed
/// RSA: the same PKCS#1 v1.5 SHA-256 signature, about six times faster, which is most of a small message's cleanup cost.
/// </summary>
internal sealed class RsaSigningContext(RSA key) : ISigner
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public string AlgorithmName => "SHA-256withRSA";

    public int GetMaxSignatureSize() => key.KeySize / 8;

    public void Init(bool forSigning, ICipherParameters parameters)
    {
        if (!forSigning) throw new NotSupportedException("this context only signs");
        _hash.GetHashAndReset();
    }

    public void Update(byte input) => _hash.AppendData([input]);

    public void BlockUpdate(byte[] input, int inOff, int inLen) => _hash.AppendData(input, inOff, inLen);

    public void BlockUpdate(ReadOnlySpan<byte> input) => _hash.AppendData(input);

    public byte[] GenerateSignature()
        => key.SignHash(_hash.GetHashAndReset(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

    public bool VerifySignature(byte[] signature) => throw new NotSupportedException("this context only signs");

    public void Reset() => _hash.GetHashAndReset();
}
