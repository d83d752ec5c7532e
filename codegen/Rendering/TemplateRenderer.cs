using System.Globalization;
using Scriban;
using Scriban.Runtime;
using Scriban.Syntax;

namespace FlashAttention.Codegen.Rendering;

/// <summary>
/// Renders the Scriban templates in <c>templates/</c>. Templates are parsed once and rendered
/// strictly (an unknown variable or member is an error, not an empty string); every error names
/// the template with line and column and the file being generated.
/// </summary>
internal sealed class TemplateRenderer
{
    private readonly string _templatesDirectory;
    private readonly string _displayPrefix;
    private readonly Dictionary<string, Template> _parsed = new(StringComparer.Ordinal);

    /// <param name="templatesDirectory">Folder holding the <c>*.sbn</c> files.</param>
    /// <param name="displayPrefix">How messages and generated headers spell that folder, e.g. "templates/".</param>
    public TemplateRenderer(string templatesDirectory, string displayPrefix = "templates/")
    {
        _templatesDirectory = templatesDirectory;
        _displayPrefix = displayPrefix;
    }

    /// <summary>The template's name as generated files cite it ("templates/cuda_sm80_instance.cu.sbn").</summary>
    public string DisplayName(string templateName) => _displayPrefix + templateName;

    /// <summary>Renders <paramref name="templateName"/> with the given global variables (snake_case names).</summary>
    public string Render(string templateName, IReadOnlyDictionary<string, object?> globals, string outputName)
    {
        var template = Load(templateName);
        var scriptGlobals = new ScriptObject();
        foreach (var (name, value) in globals)
            scriptGlobals[name] = value;

        var context = new TemplateContext
        {
            StrictVariables = true,
            EnableRelaxedMemberAccess = false,
            NewLine = "\n",
            LoopLimit = int.MaxValue,
        };
        context.PushCulture(CultureInfo.InvariantCulture);
        context.PushGlobal(scriptGlobals);
        try
        {
            return template.Render(context).ReplaceLineEndings("\n");
        }
        catch (ScriptRuntimeException e)
        {
            throw new CodegenException($"{e.Message}\n  (while rendering {outputName})", e);
        }
    }

    private Template Load(string templateName)
    {
        if (_parsed.TryGetValue(templateName, out var cached))
            return cached;

        var path = Path.Combine(_templatesDirectory, templateName);
        if (!File.Exists(path))
            throw new CodegenException($"{DisplayName(templateName)}: template not found (looked in {_templatesDirectory}).");
        var text = File.ReadAllText(path).ReplaceLineEndings("\n");
        var template = Template.Parse(text, DisplayName(templateName));
        if (template.HasErrors)
            throw new CodegenException($"Template {DisplayName(templateName)} does not parse:\n  " + string.Join("\n  ", template.Messages));
        _parsed[templateName] = template;
        return template;
    }
}
