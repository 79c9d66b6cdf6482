using Azure;

namespace Mta.Cli;

/// <summary>mtactl's exit codes (documented in docs/operations.md) and the one-line messages for failures.</summary>
public static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>Bad arguments, or nothing with that id.</summary>
    public const int Usage = 1;

    /// <summary>The configuration, a map or a key file has errors.</summary>
    public const int Configuration = 2;

    /// <summary>Storage could not be reached or refused the request.</summary>
    public const int Storage = 3;

    /// <summary>The exit code for an exception that is a user's or an environment's problem, not a bug; null for a bug.</summary>
    public static int? ForFailure(Exception e) => e switch
    {
        _ when Unreachable(e) is not null => Storage,
        InvalidOperationException when e.Message.Contains("AzureWebJobsStorage") => Configuration,
        FormatException => Configuration,
        RequestFailedException => Storage,
        ArgumentException => Usage,
        _ => null,
    };

    /// <summary>One line, no stack trace.</summary>
    public static string Describe(Exception e) => Unreachable(e) is { } h ? "storage unreachable: " + h.Message
        : e is RequestFailedException r ? $"storage refused the request: {r.Status} {r.ErrorCode ?? r.Message.Split('\n')[0]}"
        : e.Message;

    // The Azure SDK reports a connection it could not make as RequestFailedException (status 0) around an
    // HttpRequestException, and after its retries as an AggregateException of those.
    private static HttpRequestException? Unreachable(Exception e) => e switch
    {
        HttpRequestException h => h,
        RequestFailedException { Status: 0, InnerException: { } inner } => Unreachable(inner),
        AggregateException a => a.InnerExceptions.Select(Unreachable).FirstOrDefault(h => h is not null),
        _ => null,
    };
}
