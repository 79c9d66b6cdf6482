using Microsoft.Extensions.Hosting;
using Mta.Functions.Host;

// Usage: Mta.Functions.Host [--app-path DIR] [Key=Value ...]
// DIR is the functions app's build output (functions.metadata, host.json, local.settings.json);
// by default the folder this program runs from, which holds a copy of the app.
var appPath = AppContext.BaseDirectory;
var rest = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--app-path" && i + 1 < args.Length) appPath = args[++i];
    else rest.Add(args[i]);
}

try
{
    using var host = LocalFunctionsHost.Create(Path.GetFullPath(appPath), rest.ToArray()).Build();
    await host.RunAsync();
    return 0;
}
catch (Exception e) when (e is FileNotFoundException or InvalidDataException or NotSupportedException or InvalidOperationException)
{
    Console.Error.WriteLine($"mta-functions-host: {e.Message}");
    return 1;
}
