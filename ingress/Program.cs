using Mta.Ingress;
using Mta.Ingress.Auth;

// "hash-password": read a password from standard input, print the line value for Ingress:UsersFile.
if (args.Length > 0 && args[0] == "hash-password")
{
    var password = Console.In.ReadLine();
    if (string.IsNullOrEmpty(password))
    {
        Console.Error.WriteLine("usage: echo 'password' | Mta.Ingress hash-password   (prints the hash for a 'name:HASH' line)");
        return 2;
    }
    Console.WriteLine(SaslUsers.Hash(password));
    return 0;
}

try
{
    var app = IngressHost.Build(args);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is InvalidOperationException or FormatException or FileNotFoundException)
{
    Console.Error.WriteLine($"mta-ingress: {e.Message}");
    return 1;
}
