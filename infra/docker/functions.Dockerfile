# The functions app (every stage; each Deployment enables one function). Build from the repository root:
#   docker build -f infra/docker/functions.Dockerfile -t ghcr.io/mta-project/mta-functions:0.1.0 .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish functions/Mta.Functions.csproj -c Release -o /home/site/wwwroot
# The operator's tool rides along: kubectl exec deploy/mta-delivery -- dotnet /opt/mtactl/mtactl.dll queue list
RUN dotnet publish cli/Mta.Cli/Mta.Cli.csproj -c Release -o /opt/mtactl

FROM mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0
ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    ASPNETCORE_URLS=http://+:8080
COPY --from=build /home/site/wwwroot /home/site/wwwroot
COPY --from=build /opt/mtactl /opt/mtactl
EXPOSE 8080
USER 10001:10001
